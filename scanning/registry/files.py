"""Images in files: an OCI image layout directory and a ``docker save`` archive."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

from scanning.errors import (
    LayerError,
    ManifestError,
    NotFound,
)
from scanning.layers import index_tar
from scanning.registry.base import (
    _DIGEST_RE,
    CHUNK_SIZE,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    MAX_ARCHIVE_MEMBERS,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    OCI_REF_NAME,
    FetchedManifest,
    _check_descriptor,
    _expect,
    _manifest_from_bytes,
    parse_json_document,
    sha256_digest,
    verify_digest,
)


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
