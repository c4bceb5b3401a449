"""Image references: ``REGISTRY/REPO[:TAG][@DIGEST]``, ``oci:DIR[:REF]``,
``docker-archive:FILE[:TAG|@N]``, ``dir:PATH``; Docker Hub names and which hosts are plain http."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from scanning.config import setting
from scanning.registry.base import (
    _DIGEST_RE,
    _DOCKER_HUB_NAMES,
    _REPOSITORY_RE,
    _TAG_RE,
    DOCKER_HUB,
    DOCKER_HUB_API_HOST,
)

# References


class ReferenceKind(StrEnum):
    REGISTRY = "registry"
    OCI_LAYOUT = "oci"
    DOCKER_ARCHIVE = "docker-archive"
    DIRECTORY = "dir"  # an unpacked root filesystem (scanning.rootfs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReference:
    kind: ReferenceKind
    registry: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""
    path: str = ""  # OCI layout directory or docker archive file
    archive_index: int | None = None  # docker archive: the Nth image of ``manifest.json``

    @property
    def ref(self) -> str:
        """What to ask the source for: the digest when pinned, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        if self.kind is ReferenceKind.REGISTRY:
            text = f"{self.registry}/{self.repository}"
            if self.tag:
                text += f":{self.tag}"
            return f"{text}@{self.digest}" if self.digest else text
        suffix = f":{self.tag or self.digest}" if self.tag or self.digest else ""
        if self.archive_index is not None:
            suffix = f"@{self.archive_index}"
        return f"{self.kind.value}:{self.path}{suffix}"


def parse_reference(text: str) -> ImageReference:
    """``REGISTRY/REPO[:TAG][@DIGEST]``, ``oci:DIR[:REF]``, ``docker-archive:FILE[:REF|@N]``
    or ``dir:PATH``.

    A name without a registry host (``alpine``, ``library/alpine``) means Docker Hub, as
    ``docker pull`` reads it, and so do ``docker.io/`` and ``index.docker.io/``: the reference
    reads ``docker.io/library/alpine``. A reference without tag or digest means ``latest``.
    """
    text = text.strip()
    if text.startswith("oci:"):
        rest = text[len("oci:"):]
        path, sep, ref = rest.rpartition(":")
        if not sep or "/" in ref or not ref:
            path, ref = rest, ""
        if not path:
            raise ValueError(f"no directory in {text!r}")
        if _DIGEST_RE.fullmatch(ref):
            return ImageReference(kind=ReferenceKind.OCI_LAYOUT, path=path, digest=ref)
        return ImageReference(kind=ReferenceKind.OCI_LAYOUT, path=path, tag=ref)
    if text.startswith("docker-archive:"):
        return _parse_archive_reference(text)
    if text.startswith("dir:"):
        if not text[len("dir:"):]:
            raise ValueError(f"no directory in {text!r}")
        return ImageReference(kind=ReferenceKind.DIRECTORY, path=text[len("dir:"):])
    name, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f"malformed digest in {text!r}")
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, name
    if registry in _DOCKER_HUB_NAMES:
        registry = DOCKER_HUB
    repository, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = path, ""
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY_RE.fullmatch(repository):
        raise ValueError(f"malformed repository name in {text!r}")
    if tag and not _TAG_RE.fullmatch(tag):
        raise ValueError(f"malformed tag in {text!r}")
    if not tag and not digest:
        tag = "latest"
    return ImageReference(kind=ReferenceKind.REGISTRY, registry=registry, repository=repository,
                          tag=tag, digest=digest)


_ARCHIVE_INDEX_RE = re.compile(r"@(\d+)$")


def _parse_archive_reference(text: str) -> ImageReference:
    """``docker-archive:FILE``, ``docker-archive:FILE:REF`` (a ``RepoTags`` entry) or
    ``docker-archive:FILE@N`` / ``FILE:@N`` (the Nth image, from 0, as skopeo numbers them).
    As in skopeo, the file name ends at the first colon."""
    rest = text[len("docker-archive:"):]
    path, _, ref = rest.partition(":")
    index_text = ""
    if ref.startswith("@"):
        index_text, ref = ref[1:], ""
    elif not ref and (at := _ARCHIVE_INDEX_RE.search(path)):
        path, index_text = path[:at.start()], at.group(1)
    if not path:
        raise ValueError(f"no file in {text!r}")
    if index_text and not index_text.isdigit():
        raise ValueError(f"malformed image number in {text!r} (FILE@N, N from 0)")
    return ImageReference(kind=ReferenceKind.DOCKER_ARCHIVE, path=path, tag=ref,
                          archive_index=int(index_text) if index_text else None)



def is_insecure_host(registry: str) -> bool:
    """Plain http only for loopback and hosts listed in ``REGISTRY_INSECURE_HOSTS``."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return True
    allowed = {item.strip() for item in setting("REGISTRY_INSECURE_HOSTS").split(",")}
    return registry in allowed or host in allowed




def api_host(registry: str) -> str:
    """The host that serves the registry API of ``registry`` (Docker Hub's is not docker.io)."""
    return DOCKER_HUB_API_HOST if registry == DOCKER_HUB else registry




def is_acr(registry: str) -> bool:
    return registry.lower().endswith(".azurecr.io")
