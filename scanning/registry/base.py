"""Registry constants (media types, caps) and what every image source shares: the
``ImageSource`` interface, fetched manifests, digest and JSON checks."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from scanning.errors import (
    ManifestError,
)

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


# Shapes of manifests, indexes and configs: a field of the wrong JSON type is a ManifestError
# naming its path, never retried (it will not change).


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


def _check_config(config: Mapping[str, Any], what: str) -> None:
    """The config fields read here: platform strings and the history (image-spec config.md)."""
    for key in ("os", "architecture", "variant"):
        _optional(config, key, str, "", what)
    history = _optional(config, "history", list, "", what)
    for position, entry in enumerate(history or ()):
        _expect(entry, dict, f"history[{position}]", what)
        _optional(entry, "created_by", str, f"history[{position}].", what)
