"""Image references, image sources (registries, OCI layouts, docker archives) and manifests.

Four sources, one small interface (``ImageSource``: fetch a manifest, fetch a small blob, stream
a large one):

* ``AcrSource``: Azure Container Registry through ``azure-containerregistry``'s
  ``ContainerRegistryClient`` with ``DefaultAzureCredential`` (managed identity in Azure). The
  SDK's pipeline brings ACR's AAD token exchange, retries (429/5xx, azure-core ``RetryPolicy``),
  manifest digest checks and chunked, digest-checked blob downloads.
* ``HttpRegistrySource``: any other registry (Distribution, Docker Hub, GHCR, Quay, Harbor...).
  The ACR SDK cannot serve these: its challenge policy only speaks ACR's ``/oauth2/exchange``
  flow, not the Docker token protocol (``WWW-Authenticate: Bearer realm=..., service=...,
  scope=...``, https://distribution.github.io/distribution/spec/auth/token/), and azure-core's
  ``PipelineClient`` offers no policy for that challenge either. So this is a small client on
  ``requests`` (the HTTP stack azure-core's default transport already uses): anonymous, basic and
  bearer-token challenge, retries with backoff on 429/5xx/resets/cut bodies, streamed blobs
  resumed with ``Range``. ``requests`` drops the ``Authorization`` header when a blob redirect
  leaves the registry's host (to S3 or Blob Storage signed URLs), which is what the
  Distribution spec expects.
* ``OciLayoutSource``: an OCI image layout directory (image-spec ``image-layout.md``).
* ``DockerArchiveSource``: a ``docker save`` tar, the legacy format (``<id>/layer.tar``) and
  Docker 25+ (OCI blobs plus ``manifest.json``); the tar may be gzipped.

Every request carries ``User-Agent: acr-scan/<version>`` so the registry's pull log can tell
the scanner's pulls from real ones. Plain http is used only for loopback hosts and hosts listed
in ``REGISTRY_INSECURE_HOSTS``. Both registry sources give every operation a total deadline and
a bounded number of attempts (``RegistryLimits``, from the ``REGISTRY_*`` settings).

``resolve_image`` turns a reference into one ``PlatformImage`` per platform (OCI index / Docker
manifest list → every platform; attestation and ``unknown/unknown`` entries are skipped and
reported), or an explicit ``unsupported`` (schema 1) / ``not_applicable`` (signatures, SBOMs,
Helm charts and other artifacts) result; a field of the wrong JSON type is a ``ManifestError``
naming its path. Manifests are capped at 4 MiB (the limit ACR and Distribution enforce),
configs at 8 MiB, JSON nesting at 64 levels; every digest is checked.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import gzip
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import requests

from scanning import USER_AGENT
from scanning.config import float_setting, int_setting, setting
from scanning.errors import (
    AuthError,
    ConfigError,
    DeadlineExceeded,
    LayerError,
    ManifestError,
    NotFound,
    RegistryError,
    ScanError,
    TransientRegistryError,
)
from scanning.layer_types import LayerInfo
from scanning.layers import index_tar
from scanning.model import Platform

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MiB = 1 << 20
MAX_MANIFEST_BYTES = 4 * MiB
MAX_CONFIG_BYTES = 8 * MiB
MAX_JSON_DEPTH = 64
MAX_INDEX_DEPTH = 2  # an index may point at an index once (nested indexes are rare)
# Entries of a docker-archive's outer tar: a few per layer and image, so the index of them
# (names up to PATH_MAX) stays small.
MAX_ARCHIVE_MEMBERS = 10_000
CHUNK_SIZE = 1 * MiB

# Media types (image-spec media-types.md; Docker registry image-manifest-v2-2).
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST,
                    DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1))
# BuildKit marks its provenance/SBOM attestation manifests inside an index with this annotation.
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
OCI_REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
# distribution/reference grammar: path components of lowercase alphanumerics and separators.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# Docker Hub is named docker.io in references (as ``docker pull`` and ``docker inspect`` write
# them; index.docker.io is its legacy name), but docker.io does not serve the registry API:
# registry-1.docker.io does, and its 401 names the token service (auth.docker.io) as usual.
DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_NAMES = frozenset({DOCKER_HUB, "index.docker.io"})
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_REQUEST_ERRORS = (requests.ConnectionError, requests.Timeout,
                             requests.exceptions.ChunkedEncodingError)


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedManifest:
    media_type: str
    digest: str
    document: Mapping[str, Any]
    size: int


class ImageSource(Protocol):
    def fetch_manifest(self, ref: str) -> FetchedManifest:
        """A manifest or index by tag or digest (``""``: the source's only/default one)."""
        ...

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        """A small blob (a config), digest-checked."""
        ...

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """A large blob (a layer) as it streams; the reader checks the digest at the end."""
        ...

    def close(self) -> None: ...


def verify_digest(data: bytes, digest: str, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha512"):
        raise ManifestError(f"{what}: unsupported digest algorithm in {digest!r}")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise ManifestError(f"{what} {digest} fails its digest check (got {algorithm}:{actual})")


def parse_json_document(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object with nesting at most ``MAX_JSON_DEPTH``."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ManifestError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ManifestError(f"{what} is not a JSON object")
    check_json_depth(document, what)
    return document


def check_json_depth(document: Any, what: str) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ManifestError(f"{what} nests JSON deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _manifest_from_bytes(data: bytes, media_type: str, digest: str,
                         what: str) -> FetchedManifest:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{what} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} cap")
    verify_digest(data, digest, what)
    document = parse_json_document(data, what)
    declared = document.get("mediaType")
    return FetchedManifest(media_type=media_type or (declared if isinstance(declared, str)
                                                     else ""),
                           digest=digest, document=document, size=len(data))


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class OciLayoutSource:
    """An OCI image layout: ``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "index.json").is_file():
            raise NotFound(f"{root} is not an OCI image layout (no index.json)")

    def _blob_path(self, digest: str) -> Path:
        if not _DIGEST_RE.fullmatch(digest):
            raise ManifestError(f"malformed digest {digest!r}")
        algorithm, _, hex_digest = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest

    def _read_capped(self, path: Path, max_size: int, what: str) -> bytes:
        try:
            with path.open("rb") as file:
                data = file.read(max_size + 1)
        except FileNotFoundError as error:
            raise NotFound(f"{what} missing from {self.root}") from error
        if len(data) > max_size:
            raise ManifestError(f"{what} is over the {max_size}-byte cap")
        return data

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        if not _DIGEST_RE.fullmatch(ref):
            index_bytes = self._read_capped(self.root / "index.json", MAX_MANIFEST_BYTES,
                                            "index.json")
            index = parse_json_document(index_bytes, f"{self.root}/index.json")
            descriptor = _pick_layout_entry(index, ref, str(self.root))
            ref = descriptor["digest"]
        data = self._read_capped(self._blob_path(ref), MAX_MANIFEST_BYTES, f"manifest {ref}")
        return _manifest_from_bytes(data, "", ref, f"manifest {ref}")

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        data = self._read_capped(self._blob_path(digest), max_size, f"blob {digest}")
        verify_digest(data, digest, "blob")
        return data

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        path = self._blob_path(digest)
        if not path.is_file():
            raise NotFound(f"blob {digest} missing from {self.root}")
        return _file_chunks(path)

    def close(self) -> None:
        return None


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            yield chunk


def _pick_layout_entry(index: Mapping[str, Any], ref: str, where: str) -> dict[str, Any]:
    what = f"{where}/index.json"
    entries = [_check_descriptor(entry, f"manifests[{position}]", what) for position, entry
               in enumerate(_expect(index.get("manifests"), list, "manifests", what))]
    if ref:
        named = [e for e in entries if e.get("annotations", {}).get(OCI_REF_NAME) == ref]
        if not named:
            raise NotFound(f"no image named {ref!r} in {where}")
        return named[0]
    if len(entries) != 1:
        names = sorted(str(e.get("annotations", {}).get(OCI_REF_NAME, e.get("digest")))
                       for e in entries)
        raise NotFound(f"{where} holds {len(entries)} images; name one of {names}")
    return entries[0]


_ARCHIVE_BLOB_RE = re.compile(r"blobs/(sha256|sha512)/([a-f0-9]+)")


class DockerArchiveSource:
    """A ``docker save`` archive, read as an image with a synthesised Docker v2 manifest.

    Legacy archives (Docker < 25) name layers ``<id>/layer.tar``, where ``<id>`` is not a
    digest: those layers are hashed once when the archive is opened. Docker 25+ archives name
    them ``blobs/sha256/<hex>`` and the name is the digest (checked when read).

    The outer tar (plain or gzipped) is indexed header by header with a cap on extended
    header size and entry count (``index_tar``), then members are read by offset.
    """

    def __init__(self, path: Path, *, tag: str = "", index: int | None = None) -> None:
        self.path = path
        self._tag = tag
        self._index = index
        try:
            self._file = _open_archive(path)
        except FileNotFoundError as error:
            raise NotFound(f"{path}: no such file") from error
        except OSError as error:
            raise ManifestError(f"{path}: {error.strerror or error}") from error
        try:
            self._members = index_tar(self._file, where="outer tar",
                                      max_members=MAX_ARCHIVE_MEMBERS)
        except (OSError, EOFError, ValueError, LayerError) as error:
            self._file.close()
            raise ManifestError(f"{path} is not a docker archive (a tar file, plain or "
                                f"gzip-compressed): {error}") from error
        if not self._members:
            self._file.close()
            raise ManifestError(f"{path} is not a docker archive (a tar file, plain or "
                                "gzip-compressed)")
        self._blobs: dict[str, str] = {}  # digest -> member name
        self._manifest = self._synthesise()

    def _read_member(self, name: str, max_size: int) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ManifestError(f"{self.path}: {name} is missing from the archive")
        if member.size > max_size:
            raise ManifestError(f"{self.path}: {name} is over the {max_size}-byte cap")
        return b"".join(self._member_chunks(name))

    def _member_digest_and_head(self, name: str) -> tuple[str, bytes]:
        """The member's digest and its first two bytes, in one pass: in a gzipped archive a
        second read of the same member seeks back, which inflates from the start again."""
        match = _ARCHIVE_BLOB_RE.fullmatch(name)
        if match:
            return f"{match.group(1)}:{match.group(2)}", next(self._member_chunks(name), b"")[:2]
        hasher = hashlib.sha256()
        head = b""
        for chunk in self._member_chunks(name):
            head = head or chunk[:2]
            hasher.update(chunk)
        return f"sha256:{hasher.hexdigest()}", head

    def _member_chunks(self, name: str) -> Iterator[bytes]:
        member = self._members.get(name)
        if member is None:
            raise ManifestError(f"{self.path}: {name} is missing from the archive")
        position, remaining = member.offset, member.size
        while remaining:
            # Seek per chunk: two readers of one archive may interleave.
            try:
                self._file.seek(position)
                chunk = self._file.read(min(CHUNK_SIZE, remaining))
            except (OSError, EOFError) as error:
                raise ManifestError(f"{self.path}: {name} cannot be read: {error}") from error
            if not chunk:
                raise ManifestError(f"{self.path}: {name} is truncated")
            position += len(chunk)
            remaining -= len(chunk)
            yield chunk

    def _synthesise(self) -> FetchedManifest:
        if "manifest.json" not in self._members:
            raise ManifestError(
                f"{self.path} has no manifest.json (the pre-Docker-1.10 save format is not "
                "supported)"
            )
        entries = json.loads(self._read_member("manifest.json", MAX_MANIFEST_BYTES))
        if (not isinstance(entries, list) or not entries
                or not all(isinstance(entry, dict) for entry in entries)):
            raise ManifestError(f"{self.path}: manifest.json lists no image")
        entry = self._pick(entries)
        config_name = str(entry.get("Config", ""))
        config = self._read_member(config_name, MAX_CONFIG_BYTES)
        config_digest = sha256_digest(config)
        self._blobs[config_digest] = config_name
        layers = []
        for name in entry.get("Layers", []):
            name = str(name)
            digest, head = self._member_digest_and_head(name)
            self._blobs[digest] = name
            media_type = DOCKER_LAYER_GZIP if head == b"\x1f\x8b" else DOCKER_LAYER_TAR
            layers.append({"mediaType": media_type, "size": self._members[name].size,
                           "digest": digest})
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return FetchedManifest(media_type=DOCKER_MANIFEST, digest=sha256_digest(data),
                               document=document, size=len(data))

    def _pick(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The image the reference names: by number, by ``RepoTags`` entry, or the only one."""
        if self._index is not None:
            if self._index >= len(entries):
                raise NotFound(f"{self.path} holds {len(entries)} images (@0 to "
                               f"@{len(entries) - 1}), not @{self._index}")
            return entries[self._index]
        if self._tag:
            wanted = {self._tag, f"{self._tag}:latest"}
            named = [entry for entry in entries if wanted & set(_repo_tags(entry))]
            if len(named) == 1:
                return named[0]
            if not named:
                raise NotFound(f"{self.path} has no image tagged {self._tag!r}; "
                               f"{self._choices(entries)}")
        elif len(entries) == 1:
            return entries[0]
        raise NotFound(f"{self.path} holds {len(entries)} images; {self._choices(entries)}")

    def _choices(self, entries: list[dict[str, Any]]) -> str:
        listed = [f"@{number}" + (f" ({', '.join(_repo_tags(entry))})"
                                  if _repo_tags(entry) else "")
                  for number, entry in enumerate(entries)]
        return ("pick one with docker-archive:FILE@N or docker-archive:FILE:TAG: "
                + ", ".join(listed))

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        if ref and ref not in (self._manifest.digest, self._tag):
            raise NotFound(f"{self.path} has no manifest {ref}")
        return self._manifest

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        name = self._blobs.get(digest)
        if name is None:
            raise NotFound(f"{self.path} has no blob {digest}")
        data = self._read_member(name, max_size)
        verify_digest(data, digest, "blob")
        return data

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        name = self._blobs.get(digest)
        if name is None:
            raise NotFound(f"{self.path} has no blob {digest}")
        return self._member_chunks(name)

    def close(self) -> None:
        self._file.close()


def _open_archive(path: Path) -> IO[bytes]:
    """The tar inside a ``docker save`` file, gunzipped when it starts with the gzip magic."""
    file = path.open("rb")
    if file.read(2) == b"\x1f\x8b":
        file.close()
        # GzipFile reads, seeks (forward by inflating) and tells like a file; typeshed does not
        # declare it an IO[bytes].
        return cast(IO[bytes], gzip.GzipFile(path, "rb"))
    file.seek(0)
    return file


def _repo_tags(entry: Mapping[str, Any]) -> list[str]:
    tags = entry.get("RepoTags")
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicCredentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print the password
        return f"BasicCredentials(username={self.username!r})"


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


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): value for key, value in
              re.findall(r'([A-Za-z_]+)="([^"]*)"', rest)}
    return scheme.lower(), params


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryLimits:
    """How long a registry operation may take, and how often a transient failure is retried.

    A deadline covers one whole operation: every attempt, the waits between them and reading
    the body. The socket timeouts alone do not bound anything: a registry that sends one byte
    every 20 s never trips a 120 s read timeout, but it trips the deadline. Manifests, indexes
    and configs get ``manifest_deadline``; a blob gets ``blob_deadline_floor`` plus its size
    at ``blob_min_bytes_per_second`` (the size from ``Content-Length``; the floor alone when
    the registry does not say).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # one socket read
    manifest_deadline: float = 60.0
    blob_deadline_floor: float = 60.0
    blob_min_bytes_per_second: float = float(MiB)
    attempts: int = 4
    backoff: float = 0.5  # the first wait; doubled for each later one
    max_backoff: float = 30.0

    @classmethod
    def from_settings(cls) -> RegistryLimits:
        limits = cls(manifest_deadline=float_setting("REGISTRY_MANIFEST_DEADLINE_SECONDS"),
                     blob_deadline_floor=float_setting("REGISTRY_BLOB_DEADLINE_SECONDS"),
                     blob_min_bytes_per_second=float_setting(
                         "REGISTRY_BLOB_MIN_BYTES_PER_SECOND"),
                     attempts=int_setting("REGISTRY_ATTEMPTS"))
        numbers = (limits.manifest_deadline, limits.blob_deadline_floor,
                   limits.blob_min_bytes_per_second)
        if not (all(0 < number < math.inf for number in numbers)
                and 1 <= limits.attempts <= 20):
            raise ConfigError("REGISTRY_*_DEADLINE_SECONDS and REGISTRY_BLOB_MIN_BYTES_PER_SECOND "
                              "must be positive and finite, REGISTRY_ATTEMPTS from 1 to 20")
        return limits

    def blob_deadline(self, size: int) -> float:
        return self.blob_deadline_floor + size / self.blob_min_bytes_per_second

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after failed attempt ``attempt`` (1-based): exponential backoff with equal
        jitter (half fixed, half random, so that many scans hit by one outage do not come
        back in step), or the registry's ``Retry-After`` when that is longer."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return max(ceiling / 2 + rng.uniform(0, ceiling / 2), retry_after or 0.0)


class _Deadline:
    """The moment one registry operation must be over (monotonic clock)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.what = what
        self.seconds = seconds
        self._started = time.monotonic()

    def extend(self, seconds: float) -> None:
        """Allow ``seconds`` from the start, once the operation's size is known."""
        self.seconds = max(self.seconds, seconds)

    def remaining(self) -> float:
        return self._started + self.seconds - time.monotonic()

    def exceeded(self, registry: str, detail: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"{registry}: {self.what} not received within its "
                                f"{self.seconds:.0f} s deadline ({detail})")


class _Watchdog:
    """Shuts the response's socket down when the deadline passes, so that a read blocked on a
    registry that drips its body returns at once (urllib3's ``HTTPResponse.shutdown`` exists
    for exactly this: unblocking a read from another thread)."""

    def __init__(self, response: requests.Response, deadline: _Deadline) -> None:
        self.fired = threading.Event()
        self._response = response
        self._timer = threading.Timer(max(0.0, deadline.remaining()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired.set()
        # Already released or closed: then no read is blocked on it.
        with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
            self._response.raw.shutdown()

    def cancel(self) -> None:
        self._timer.cancel()


class _RetryLater(TransientRegistryError):
    """A transient HTTP answer, with the wait the registry asked for (``Retry-After``)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str, now: datetime) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None when
    absent or malformed (only ASCII digits are digits here)."""
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


_CONTENT_RANGE_RE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)")


class HttpRegistrySource:
    """A Distribution-API registry over ``requests``: see the module docstring for why."""

    def __init__(self, registry: str, repository: str, *,
                 credentials: BasicCredentials | None = None,
                 session: requests.Session | None = None, limits: RegistryLimits | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.registry = registry
        self.repository = repository
        scheme = "http" if is_insecure_host(registry) else "https"
        self.base_url = f"{scheme}://{api_host(registry)}/v2/{repository}"
        self._credentials = credentials
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._authorization: str | None = None
        self._limits = limits or RegistryLimits.from_settings()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _authenticate(self, challenge: str) -> None:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if self._credentials is None:
                raise AuthError(f"{self.registry} requires credentials (basic auth)")
            token = base64.b64encode(
                f"{self._credentials.username}:{self._credentials.password}".encode()
            ).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme != "bearer" or "realm" not in params:
            raise AuthError(f"{self.registry}: unsupported authentication challenge {scheme!r}")
        query = {"scope": params.get("scope", f"repository:{self.repository}:pull")}
        if "service" in params:
            query["service"] = params["service"]
        auth = ((self._credentials.username, self._credentials.password)
                if self._credentials else None)
        response = self._send_once("GET", params["realm"], params=query, auth=auth,
                                   authorize=False)
        if response.status_code in (401, 403):
            raise AuthError(f"{self.registry} token service refused us ({response.status_code})")
        if response.status_code != 200:
            raise RegistryError(f"{self.registry} token service answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except ValueError as error:
            raise AuthError(f"{self.registry} token service sent no JSON") from error
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.registry} token service sent no token")
        self._authorization = f"Bearer {token}"

    def _send_once(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None, auth: Any = None,
                   authorize: bool = True, stream: bool = False) -> requests.Response:
        """One request (headers only: the caller reads the body), retried on transient
        failures within the manifest deadline."""
        deadline = _Deadline(self._limits.manifest_deadline, f"{method} {urlsplit(url).path}")
        return self._retrying(lambda: self._attempt(
            method, url, deadline, headers=headers, params=params, auth=auth,
            authorize=authorize, stream=stream), deadline)

    def _retrying(self, operation: Callable[[], _T], deadline: _Deadline) -> _T:
        """``operation`` until it works, fails for good, or runs out of attempts or time."""
        attempt = 1
        while True:
            try:
                return operation()
            except TransientRegistryError as error:
                self._pause(attempt, error, deadline)
                attempt += 1

    def _pause(self, attempt: int, error: TransientRegistryError, deadline: _Deadline) -> None:
        """Wait before attempt ``attempt + 1``, or raise when there is none to make.

        Both ways out stay retryable: the registry said the failure was temporary, so the
        caller's retry policy (the orchestration's) may try again later.
        """
        limits = self._limits
        if attempt >= limits.attempts:
            raise TransientRegistryError(f"{self.registry}: {deadline.what}: {attempt} "
                                         f"attempts failed (last: {error})") from error
        retry_after = error.retry_after if isinstance(error, _RetryLater) else None
        delay = limits.delay(attempt, retry_after, self._rng)
        if delay >= deadline.remaining():
            raise TransientRegistryError(
                f"{self.registry}: {deadline.what}: attempt {attempt} failed, and waiting "
                f"{delay:.1f} s more would pass the {deadline.seconds:.0f} s deadline "
                f"(last: {error})") from error
        log.info("registry %s: %s: %s; attempt %d of %d in %.2f s", self.registry,
                 deadline.what, error, attempt + 1, limits.attempts, delay)
        self._sleep(delay)

    def _attempt(self, method: str, url: str, deadline: _Deadline, *,
                 headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None, auth: Any = None,
                 authorize: bool = True, stream: bool = False) -> requests.Response:
        """One request; transient failures raise ``TransientRegistryError``. The socket
        timeouts are cut to the time the deadline leaves, so a timeout then means the
        deadline has passed."""
        what = f"{method} {urlsplit(url).path}"
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.exceeded(self.registry, f"no time left for {what}")
        connect = min(self._limits.connect_timeout, remaining)
        read = min(self._limits.read_timeout, remaining)
        request_headers = dict(headers or {})
        if authorize and self._authorization:
            request_headers["Authorization"] = self._authorization
        try:
            response = self._session.request(method, url, headers=request_headers,
                                             params=params, auth=auth, stream=stream,
                                             timeout=(connect, read))
        except requests.Timeout as error:
            if read < self._limits.read_timeout:
                raise deadline.exceeded(self.registry, f"{what} timed out") from error
            raise TransientRegistryError(f"{what}: {type(error).__name__}") from error
        except _TRANSIENT_REQUEST_ERRORS as error:
            raise TransientRegistryError(f"{what}: {type(error).__name__}: {error}") from error
        except requests.RequestException as error:
            raise RegistryError(f"{self.registry}: {error}") from error
        if response.status_code in _RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After", ""),
                                            datetime.now(UTC))
            response.close()
            raise _RetryLater(f"{what}: HTTP {response.status_code}", retry_after)
        return response

    def _challenged(self, method: str, url: str, deadline: _Deadline, *,
                    headers: Mapping[str, str] | None = None) -> requests.Response:
        """One request, its body not read yet; sent once more after answering a 401's
        authentication challenge."""
        response = self._attempt(method, url, deadline, headers=headers, stream=True)
        if response.status_code == 401:
            response.close()
            self._authenticate(response.headers.get("WWW-Authenticate", ""))
            response = self._attempt(method, url, deadline, headers=headers, stream=True)
        return response

    def _get(self, path: str, deadline: _Deadline, *,
             headers: Mapping[str, str] | None = None) -> requests.Response:
        """One GET (answering an auth challenge once), its body not read yet: 200, or 206
        when ``headers`` ask for a range."""
        response = self._challenged("GET", f"{self.base_url}/{path}", deadline, headers=headers)
        if response.status_code in (401, 403):
            response.close()
            raise AuthError(f"{self.registry} refused access to {self.repository} "
                            f"({response.status_code})")
        if response.status_code == 404:
            response.close()
            raise NotFound(f"{self.registry}/{self.repository}: {path} not found")
        if response.status_code not in (200, 206):
            response.close()
            raise RegistryError(f"{self.registry}: GET {path} answered {response.status_code}")
        return response

    def _read_capped(self, response: requests.Response, max_size: int, what: str,
                     deadline: _Deadline | None = None) -> bytes:
        """The whole body, at most ``max_size`` bytes, before the deadline."""
        deadline = deadline or _Deadline(self._limits.manifest_deadline, what)
        declared = response.headers.get("Content-Length", "")
        if re.fullmatch(r"[0-9]+", declared) and int(declared) > max_size:
            response.close()
            raise ManifestError(f"{what} is {declared} bytes, over the {max_size}-byte cap")
        pieces: list[bytes] = []
        total = 0
        for chunk in self._body(response, deadline, 64 * 1024):
            total += len(chunk)
            if total > max_size:
                response.close()
                raise ManifestError(f"{what} is over the {max_size}-byte cap")
            pieces.append(chunk)
        return b"".join(pieces)

    def _body(self, response: requests.Response, deadline: _Deadline,
              chunk_size: int) -> Iterator[bytes]:
        """The body as it arrives; a read error is transient, unless the deadline cut it."""
        watchdog = _Watchdog(response, deadline)
        received = 0
        try:
            for chunk in response.iter_content(chunk_size):
                received += len(chunk)
                yield chunk
        except _TRANSIENT_REQUEST_ERRORS as error:
            if watchdog.fired.is_set():
                raise deadline.exceeded(self.registry, f"{received} bytes received") from error
            raise TransientRegistryError(f"reading {deadline.what}: {error}") from error
        finally:
            watchdog.cancel()
            response.close()
        # Without a Content-Length, a shut-down socket looks like the end of the body.
        if watchdog.fired.is_set():
            raise deadline.exceeded(self.registry, f"{received} bytes received")

    def _fetch(self, path: str, what: str, max_size: int, *,
               headers: Mapping[str, str] | None = None) -> tuple[requests.Response, bytes]:
        """A small document (manifest, index, config) with its response headers, retried as a
        whole: a reset in the middle of the body is as transient as a 503."""
        deadline = _Deadline(self._limits.manifest_deadline, what)

        def attempt() -> tuple[requests.Response, bytes]:
            response = self._get(path, deadline, headers=headers)
            return response, self._read_capped(response, max_size, what, deadline)

        return self._retrying(attempt, deadline)

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        what = f"manifest {ref}"
        response, data = self._fetch(f"manifests/{ref or 'latest'}", what, MAX_MANIFEST_BYTES,
                                     headers={"Accept": ACCEPT})
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        header_digest = response.headers.get("Docker-Content-Digest", "")
        digest = ref if _DIGEST_RE.fullmatch(ref) else sha256_digest(data)
        manifest = _manifest_from_bytes(data, media_type, digest, what)
        if header_digest.startswith("sha256:") and header_digest != sha256_digest(data):
            raise ManifestError(f"manifest {ref}: registry says {header_digest}, content "
                                f"hashes to {sha256_digest(data)}")
        return manifest

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        _, data = self._fetch(f"blobs/{digest}", f"blob {digest}", max_size)
        verify_digest(data, digest, "blob")
        return data

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob as it streams. A transient failure part way resumes where it stopped
        (``Range``, which Distribution and the OCI distribution-spec support for blobs), or
        from the start, skipping what was already passed on, when the registry ignores it.
        A blob that does not arrive within its deadline is a layer that cannot be read
        (``LayerError``: its platform fails, naming the layer), not a retryable error: the
        deadline already covers this operation's own retries."""
        deadline = _Deadline(self._limits.blob_deadline(0), f"blob {digest}")
        received = 0
        attempt = 1
        while True:
            try:
                headers = {"Range": f"bytes={received}-"} if received else None
                response = self._get(f"blobs/{digest}", deadline, headers=headers)
                skip = self._resume_offset(response, received, digest)
                deadline.extend(self._limits.blob_deadline(_blob_size(response)))
                for chunk in self._body(response, deadline, CHUNK_SIZE):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                        if not chunk:
                            continue
                    received += len(chunk)
                    yield chunk
                return
            except DeadlineExceeded as error:
                raise LayerError(f"layer {digest} cannot be read: {error}") from error
            except TransientRegistryError as error:
                self._pause(attempt, error, deadline)
                attempt += 1

    def _resume_offset(self, response: requests.Response, received: int, digest: str) -> int:
        """How many bytes of ``response`` were passed on already (0 for a matching range)."""
        if response.status_code == 200:
            return received
        found = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
        if found is None or int(found.group(1)) != received:
            response.close()
            raise RegistryError(f"{self.registry}: blob {digest}: asked for bytes from "
                                f"{received}, got {response.headers.get('Content-Range')!r}")
        return 0

    def close(self) -> None:
        self._session.close()


def _blob_size(response: requests.Response) -> int:
    """The whole blob's size: ``Content-Range``'s total on a 206, else ``Content-Length``;
    0 when the registry does not say."""
    found = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
    if found is not None and found.group(3) != "*":
        return int(found.group(3))
    declared = response.headers.get("Content-Length", "")
    return int(declared) if re.fullmatch(r"[0-9]{1,19}", declared) else 0


class AcrSource:
    """Azure Container Registry through the SDK (AAD tokens, retries, digest checks)."""

    def __init__(self, registry: str, repository: str, *, credential: Any,
                 endpoint: str | None = None, limits: RegistryLimits | None = None) -> None:
        from azure.containerregistry import ContainerRegistryClient

        self.registry = registry
        self.repository = repository
        endpoint = endpoint or f"https://{registry}"
        self._client = ContainerRegistryClient(endpoint, credential, user_agent=USER_AGENT)
        # The SDK refuses http unless told per call (azure.containerregistry._helpers).
        self._call_options: dict[str, Any] = (
            {} if endpoint.startswith("https://") else {"enforce_https": False}
        )
        self._limits = limits or RegistryLimits.from_settings()

    def _options(self, seconds: float) -> dict[str, Any]:
        """Per-call pipeline options: azure-core's RetryPolicy takes ``timeout`` as the total
        for every attempt of one request and ``retry_total`` as the retries after the first
        (it backs off exponentially and honours Retry-After itself); the transport takes the
        socket timeouts. A body the SDK reads in one go is bounded by the read timeout per
        socket read only: ACR is Azure's service, not a registry anyone can point us at."""
        limits = self._limits
        return {**self._call_options, "timeout": seconds, "retry_total": limits.attempts - 1,
                "connection_timeout": min(limits.connect_timeout, seconds),
                "read_timeout": min(limits.read_timeout, seconds)}

    def _translate(self, error: Exception, what: str) -> ScanError:
        return azure_error(self.registry, what, error,
                           refused=f"{self.registry} refused access to {self.repository}",
                           missing=f"{self.registry}/{self.repository}: {what} not found")

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        from azure.core.exceptions import AzureError

        deadline = _Deadline(self._limits.manifest_deadline, f"manifest {ref}")
        try:
            result = self._client.get_manifest(self.repository, ref or "latest",
                                               **self._options(deadline.seconds))
        except (AzureError, ValueError) as error:
            if deadline.remaining() <= 0:
                raise deadline.exceeded(self.registry, str(error)) from error
            raise self._translate(error, f"manifest {ref}") from error
        if not isinstance(result.manifest, Mapping) or not result.digest:
            raise ManifestError(f"{self.registry}: manifest {ref} is not a JSON object")
        document = dict(result.manifest)
        check_json_depth(document, f"manifest {ref}")
        media_type = (result.media_type or "").split(";")[0].strip()
        return FetchedManifest(media_type=media_type, digest=result.digest, document=document,
                               size=len(json.dumps(document)))

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        pieces: list[bytes] = []
        total = 0
        for chunk in self.blob_chunks(digest):
            total += len(chunk)
            if total > max_size:
                raise ManifestError(f"blob {digest} is over the {max_size}-byte cap")
            pieces.append(chunk)
        return b"".join(pieces)

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob in the SDK's pieces (4 MiB ranged requests, each retried by the pipeline).
        The SDK does not say the size before the end, so the deadline grows with what has
        arrived: the floor plus the bytes received at the minimum rate, checked between
        pieces; passing it makes the layer unreadable (``LayerError``), as over HTTP."""
        from azure.core.exceptions import AzureError

        limits = self._limits
        deadline = _Deadline(limits.blob_deadline(0), f"blob {digest}")
        received = 0
        try:
            with self._client.download_blob(
                    self.repository, digest,
                    **self._options(limits.manifest_deadline)) as stream:
                for piece in stream:
                    received += len(piece)
                    deadline.extend(limits.blob_deadline(received))
                    if deadline.remaining() <= 0:
                        raise deadline.exceeded(self.registry, f"{received} bytes received")
                    yield piece
        except DeadlineExceeded as error:
            raise LayerError(f"layer {digest} cannot be read: {error}") from error
        except (AzureError, ValueError) as error:
            raise self._translate(error, f"blob {digest}") from error

    def close(self) -> None:
        self._client.close()


def azure_error(registry: str, what: str, error: Exception, *, refused: str,
                missing: str = "") -> ScanError:
    """The scan error an Azure SDK error of ``what`` at ``registry`` means: transient ones
    retryable, refusals ``AuthError``, answers of the wrong shape ``ManifestError``. The one
    mapping for every ACR call (images here, the catalog in ``scanning.catalog``)."""
    from azure.containerregistry import DigestValidationError
    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, DigestValidationError):
        return ManifestError(f"{registry}: {what} fails its digest check")
    if isinstance(error, ResourceNotFoundError):
        return NotFound(missing or f"{registry}: {what}: not found")
    if isinstance(error, ClientAuthenticationError):
        return AuthError(refused)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientRegistryError(f"{registry}: {what}: {error}")
    if isinstance(error, DecodeError):  # not JSON at all
        return RegistryError(f"{registry}: {what}: malformed answer: {error}")
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        if status in _RETRY_STATUSES:
            return TransientRegistryError(f"{registry}: {what}: HTTP {status}")
        if status in (401, 403):
            return AuthError(f"{refused} ({status})")
        return RegistryError(f"{registry}: {what}: HTTP {status}")
    if isinstance(error, ValueError):  # the SDK's 4 MiB manifest cap, header and shape checks
        return ManifestError(f"{registry}: {what}: malformed answer: {error}")
    return RegistryError(f"{registry}: {what}: {error}")


def is_acr(registry: str) -> bool:
    return registry.lower().endswith(".azurecr.io")


def open_source(reference: ImageReference, *,
                credentials: BasicCredentials | None = None) -> ImageSource:
    """The source that serves ``reference``: ACR via the SDK, other registries over HTTP."""
    if reference.kind is ReferenceKind.OCI_LAYOUT:
        return OciLayoutSource(Path(reference.path))
    if reference.kind is ReferenceKind.DIRECTORY:
        from scanning.rootfs import DirectorySource  # it builds on this module

        return DirectorySource(Path(reference.path))
    if reference.kind is ReferenceKind.DOCKER_ARCHIVE:
        return DockerArchiveSource(Path(reference.path), tag=reference.tag,
                                   index=reference.archive_index)
    if is_acr(reference.registry) and credentials is None:
        from azure.identity import DefaultAzureCredential

        return AcrSource(reference.registry, reference.repository,
                         credential=DefaultAzureCredential())
    return HttpRegistrySource(reference.registry, reference.repository, credentials=credentials)


# ---------------------------------------------------------------------------------------------
# Resolving a reference to its platform images


class ResolveStatus(StrEnum):
    IMAGE = "image"
    UNSUPPORTED = "unsupported"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformImage:
    platform: Platform
    manifest_digest: str
    media_type: str
    config_digest: str
    layers: tuple[LayerInfo, ...]
    config_size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedManifest:
    digest: str
    platform: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedImage:
    reference: str
    digest: str
    media_type: str
    status: ResolveStatus
    reason: str = ""
    platforms: tuple[PlatformImage, ...] = ()
    skipped: tuple[SkippedManifest, ...] = ()


class _NotAnImage(Exception):
    def __init__(self, status: ResolveStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _classify(manifest: FetchedManifest) -> str:
    document = manifest.document
    media_type = manifest.media_type
    if media_type in ("", "application/json", "text/plain"):
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) else ""
    if document.get("schemaVersion") == 1 or media_type in SCHEMA1_TYPES:
        return DOCKER_SCHEMA1
    if media_type in INDEX_TYPES or media_type in MANIFEST_TYPES:
        return media_type
    if not media_type:  # OCI allows mediaType to be absent: tell index from manifest by shape
        if isinstance(document.get("manifests"), list):
            return OCI_INDEX
        if isinstance(document.get("config"), dict):
            return OCI_MANIFEST
    return media_type


def _is_layer_type(media_type: str) -> bool:
    return (media_type.startswith(("application/vnd.oci.image.layer.",
                                   "application/vnd.docker.image.rootfs."))
            and ".tar" in media_type)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "null"


def _expect(value: Any, expected: type, path: str, what: str) -> Any:
    """``value`` when it has the JSON type ``expected``; else a ManifestError naming ``path``.

    JSON ``true`` is not a number here, although Python's bool is an int.
    """
    if expected is int:
        valid = isinstance(value, int) and not isinstance(value, bool)
    else:
        valid = isinstance(value, expected)
    if not valid:
        wanted = {dict: "an object", list: "an array", str: "a string", int: "an integer"}
        raise ManifestError(f"{what}: {path} must be {wanted[expected]}, not {_json_type(value)}")
    return value


def _optional(document: Mapping[str, Any], key: str, expected: type, path: str,
              what: str) -> Any:
    """An optional member: ``None`` when absent, else checked like ``_expect``."""
    if key not in document:
        return None
    return _expect(document[key], expected, f"{path}{key}", what)


def _check_descriptor(value: Any, path: str, what: str) -> dict[str, Any]:
    """An OCI content descriptor (image-spec descriptor.md): ``digest`` required and well
    formed (it goes into a URL), ``mediaType``, ``size``, ``annotations``, ``artifactType`` and
    ``platform`` of their spec types when present."""
    descriptor: dict[str, Any] = _expect(value, dict, path, what)
    digest = _expect(descriptor.get("digest"), str, f"{path}.digest", what)
    if not _DIGEST_RE.fullmatch(digest):
        raise ManifestError(f"{what}: {path}.digest is not a digest: {digest[:80]!r}")
    _optional(descriptor, "mediaType", str, f"{path}.", what)
    _optional(descriptor, "artifactType", str, f"{path}.", what)
    size = _optional(descriptor, "size", int, f"{path}.", what)
    if size is not None and size < 0:
        raise ManifestError(f"{what}: {path}.size is negative ({size})")
    annotations = _optional(descriptor, "annotations", dict, f"{path}.", what)
    for key, text in (annotations or {}).items():
        _expect(text, str, f"{path}.annotations[{key[:80]!r}]", what)
    platform = _optional(descriptor, "platform", dict, f"{path}.", what) or {}
    for key in ("os", "architecture", "variant", "os.version"):
        _optional(platform, key, str, f"{path}.platform.", what)
    return descriptor


def _check_top_level(manifest: FetchedManifest, what: str) -> None:
    _optional(manifest.document, "mediaType", str, "", what)
    _optional(manifest.document, "schemaVersion", int, "", what)


def _check_image_manifest(document: Mapping[str, Any], what: str) -> None:
    config = _check_descriptor(document.get("config"), "config", what)
    artifact_type = _optional(document, "artifactType", str, "", what)
    config_type = config.get("mediaType", "")
    if artifact_type and artifact_type not in IMAGE_CONFIG_TYPES:
        raise _NotAnImage(ResolveStatus.NOT_APPLICABLE, f"artifact of type {artifact_type}")
    if config_type not in IMAGE_CONFIG_TYPES:
        raise _NotAnImage(ResolveStatus.NOT_APPLICABLE,
                          f"artifact with config media type {config_type or '(none)'}")
    layers = _expect(document.get("layers"), list, "layers", what)
    for position, layer in enumerate(layers):
        layer_type = _check_descriptor(layer, f"layers[{position}]", what).get("mediaType", "")
        if not _is_layer_type(layer_type):
            raise _NotAnImage(ResolveStatus.NOT_APPLICABLE,
                              f"artifact with layer media type {layer_type or '(none)'}")


def _check_config(config: Mapping[str, Any], what: str) -> None:
    """The config fields read here: platform strings and the history (image-spec config.md)."""
    for key in ("os", "architecture", "variant"):
        _optional(config, key, str, "", what)
    history = _optional(config, "history", list, "", what)
    for position, entry in enumerate(history or ()):
        _expect(entry, dict, f"history[{position}]", what)
        _optional(entry, "created_by", str, f"history[{position}].", what)


def clean_instruction(created_by: str) -> str:
    """The Dockerfile instruction from a config ``history[].created_by`` entry."""
    text = created_by.strip()
    if text.startswith("|"):
        # ``|2 A=1 B=2 /bin/sh -c cmd``: the classic builder's RUN with build arguments.
        words = text.split(" ")
        count = int(words[0][1:]) if words[0][1:].isdigit() else 0
        text = " ".join(words[1 + count:])
    if text.startswith("/bin/sh -c #(nop) "):
        return text[len("/bin/sh -c #(nop) "):].strip()
    if text.startswith("/bin/sh -c "):
        return f"RUN {text[len('/bin/sh -c '):]}"
    return text.removesuffix(" # buildkit")


def layer_instructions(config: Mapping[str, Any], layer_count: int) -> list[str]:
    """One instruction per layer from ``history`` (entries with ``empty_layer`` made none).

    When the history does not line up with the layers (squashed or hand-made images) no
    instruction is guessed.
    """
    history = config.get("history")
    if not isinstance(history, list):
        return [""] * layer_count
    made_layers = [entry for entry in history
                   if isinstance(entry, dict) and not entry.get("empty_layer")]
    if len(made_layers) != layer_count:
        return [""] * layer_count
    return [clean_instruction(str(entry.get("created_by", ""))) for entry in made_layers]


def _platform_of(entry: Mapping[str, Any]) -> Platform | None:
    """The declared platform of a descriptor ``_check_descriptor`` accepted."""
    platform = entry.get("platform")
    if platform is None:
        return None
    return Platform(os=_platform_field(platform, "os"),
                    architecture=_platform_field(platform, "architecture"),
                    variant=_platform_field(platform, "variant"))


def _platform_field(document: Mapping[str, Any], key: str) -> str:
    """A platform string (``os``, ``architecture``, ``variant``) of a document whose shape was
    checked (``_check_descriptor``, ``_check_config``: a field of another type is refused
    there, so ``str()`` of it never becomes a platform such as ``5/['x']/{'a': 1}``)."""
    value = document.get(key)
    return value if isinstance(value, str) else ""


def _matches(platform: Platform, wanted: Platform | None) -> bool:
    if wanted is None:
        return True
    return (platform.os == wanted.os and platform.architecture == wanted.architecture
            and (not wanted.variant or platform.variant == wanted.variant))


def _image(source: ImageSource, manifest: FetchedManifest,
           declared: Platform | None) -> PlatformImage:
    _check_image_manifest(manifest.document, f"manifest {manifest.digest}")
    config_descriptor = manifest.document["config"]
    config_digest = config_descriptor["digest"]
    config_bytes = source.fetch_blob(config_digest, MAX_CONFIG_BYTES)
    config = parse_json_document(config_bytes, f"config {config_digest}")
    _check_config(config, f"config {config_digest}")
    layers = manifest.document["layers"]
    instructions = layer_instructions(config, len(layers))
    platform = declared or Platform(
        os=_platform_field(config, "os") or "unknown",
        architecture=_platform_field(config, "architecture") or "unknown",
        variant=_platform_field(config, "variant"))
    return PlatformImage(
        platform=platform,
        manifest_digest=manifest.digest,
        media_type=manifest.media_type,
        config_digest=config_digest,
        config_size=config_descriptor.get("size", 0),
        layers=tuple(
            LayerInfo(digest=layer["digest"], size=layer.get("size", 0),
                      media_type=str(layer.get("mediaType", "")), instruction=instruction)
            for layer, instruction in zip(layers, instructions, strict=True)
        ),
    )


def resolve_image(source: ImageSource, reference: ImageReference, *,
                  platform: Platform | None = None) -> ResolvedImage:
    """Every platform image ``reference`` names (or the one matching ``platform``)."""
    top = source.fetch_manifest(reference.ref)
    _check_top_level(top, f"manifest {top.digest}")
    kind = _classify(top)
    result = ResolvedImage(reference=str(reference), digest=top.digest, media_type=kind,
                           status=ResolveStatus.IMAGE)
    if kind == DOCKER_SCHEMA1:
        return replace(result, status=ResolveStatus.UNSUPPORTED,
                        reason="Docker image manifest schema 1 is not supported (deprecated "
                               "format; re-push with a current client)")
    if kind in MANIFEST_TYPES:
        try:
            image = _image(source, top, None)
        except _NotAnImage as outcome:
            return replace(result, status=outcome.status, reason=outcome.reason)
        if not _matches(image.platform, platform):
            raise NotFound(f"{reference} is {image.platform}, not {platform}")
        return replace(result, platforms=(image,))
    if kind not in INDEX_TYPES:
        return replace(result, status=ResolveStatus.NOT_APPLICABLE,
                        reason=f"not an image (media type {kind or '(none)'})")
    images: list[PlatformImage] = []
    skipped: list[SkippedManifest] = []
    _walk_index(source, top, platform, images, skipped, depth=1)
    if not images:
        if platform is not None and not skipped:
            raise NotFound(f"{reference} has no {platform} image")
        if platform is not None and all("not requested" in s.reason for s in skipped):
            available = sorted({s.platform for s in skipped})
            raise NotFound(f"{reference} has no {platform} image (has {', '.join(available)})")
        reasons = "; ".join(sorted({s.reason for s in skipped})) or "empty index"
        return replace(result, status=ResolveStatus.NOT_APPLICABLE, skipped=tuple(skipped),
                        reason=f"index holds no image: {reasons}")
    return replace(result, platforms=tuple(images), skipped=tuple(skipped))


def _walk_index(source: ImageSource, index: FetchedManifest, wanted: Platform | None,
                images: list[PlatformImage], skipped: list[SkippedManifest], depth: int) -> None:
    what = f"index {index.digest}"
    entries = _expect(index.document.get("manifests"), list, "manifests", what)
    for position, raw_entry in enumerate(entries):
        entry = _check_descriptor(raw_entry, f"manifests[{position}]", what)
        digest = entry["digest"]
        declared = _platform_of(entry)
        label = str(declared) if declared else "(none)"
        annotations = entry.get("annotations") or {}
        if annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="attestation manifest"))
            continue
        if declared and declared.os == "unknown" and declared.architecture == "unknown":
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="unknown platform"))
            continue
        if declared and not _matches(declared, wanted):
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="platform not requested"))
            continue
        child = source.fetch_manifest(digest)
        _check_top_level(child, f"manifest {digest}")
        kind = _classify(child)
        if kind in INDEX_TYPES and depth < MAX_INDEX_DEPTH:
            _walk_index(source, child, wanted, images, skipped, depth + 1)
            continue
        if kind == DOCKER_SCHEMA1:
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="schema 1 manifest (unsupported)"))
            continue
        if kind not in MANIFEST_TYPES:
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason=f"not an image ({kind or 'no media type'})"))
            continue
        try:
            image = _image(source, child, declared)
        except _NotAnImage as outcome:
            skipped.append(SkippedManifest(digest=digest, platform=label, reason=outcome.reason))
            continue
        if not _matches(image.platform, wanted):
            skipped.append(SkippedManifest(digest=digest, platform=str(image.platform),
                                           reason="platform not requested"))
            continue
        images.append(image)

