"""An unpacked root filesystem (``dir:PATH``) read as a one-layer image.

The directory is served as an ``ImageSource`` whose only layer is a tar stream made on the fly
(POSIX pax headers, entries in sorted order, one file open at a time, content read in chunks),
so the analysis pipeline reads it exactly as it reads an image layer: same analyzers, same
caps, same symlink rules. The stream is made twice, once to compute its digest when the
source opens and once when the layer is read; the layer reader checks the digest, so a tree
that changes in between fails with a digest mismatch instead of giving a mixed answer.

The walk stays on the directory's own file system (``/proc`` or other mounts under a live root
are not read) and does not follow symlinks (they are stored as links; the merge resolves them
inside the image root). Sockets, FIFOs and device nodes are left out: no analyzer reads them.
A file that cannot be opened fails the layer, naming the file: nothing unread is called healthy.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from scanning.errors import LayerError, NotFound
from scanning.registry import (
    CHUNK_SIZE,
    DOCKER_CONFIG,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    FetchedManifest,
    sha256_digest,
    verify_digest,
)

BLOCK = tarfile.BLOCKSIZE


class DirectorySource:
    """A directory as an image with one uncompressed layer."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise NotFound(f"{root}: no such directory")
        self.root = root
        hasher = hashlib.sha256()
        size = 0
        for chunk in self._tar_chunks():
            hasher.update(chunk)
            size += len(chunk)
        self._layer_digest = f"sha256:{hasher.hexdigest()}"
        self._config = json.dumps({
            "architecture": "unknown", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [self._layer_digest]},
            "history": [{"created_by": f"dir:{root}"}],
        }, sort_keys=True).encode()
        config_digest = sha256_digest(self._config)
        document = {
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(self._config),
                       "digest": config_digest},
            "layers": [{"mediaType": DOCKER_LAYER_TAR, "size": size,
                        "digest": self._layer_digest}],
        }
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        self._manifest = FetchedManifest(media_type=DOCKER_MANIFEST, digest=sha256_digest(data),
                                         document=document, size=len(data))

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        if ref and ref != self._manifest.digest:
            raise NotFound(f"{self.root} has no manifest {ref}")
        return self._manifest

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        if digest != self._manifest.document["config"]["digest"]:
            raise NotFound(f"{self.root} has no blob {digest}")
        verify_digest(self._config, digest, "config")
        return self._config

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        if digest != self._layer_digest:
            raise NotFound(f"{self.root} has no blob {digest}")
        return self._tar_chunks()

    def close(self) -> None:
        return None

    def _entries(self) -> Iterator[tuple[str, os.stat_result]]:
        """(path relative to the root, lstat) of every entry: each directory's entries in
        sorted order, depth first, so the stream is the same bytes every time."""
        device = self.root.stat().st_dev
        pending = [""]
        while pending:
            relative = pending.pop()
            directory = self.root / relative
            try:
                names = sorted(os.listdir(directory))
            except OSError as error:
                raise LayerError(f"dir:{self.root}: cannot list {relative or '.'}: "
                                 f"{error.strerror}") from error
            subdirectories = []
            for name in names:
                path = f"{relative}/{name}" if relative else name
                try:
                    info = os.lstat(self.root / path)
                except OSError as error:
                    raise LayerError(f"dir:{self.root}: cannot read {path}: "
                                     f"{error.strerror}") from error
                if stat.S_ISDIR(info.st_mode):
                    if info.st_dev != device:
                        continue  # another file system mounted here (/proc, /sys, …)
                    subdirectories.append(path)
                yield path, info
            pending.extend(reversed(subdirectories))

    def _tar_chunks(self) -> Iterator[bytes]:
        for path, info in self._entries():
            member = tarfile.TarInfo(path)
            member.mode = stat.S_IMODE(info.st_mode)
            member.mtime = int(info.st_mtime)
            if stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(info.st_mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(self.root / path)
            elif stat.S_ISREG(info.st_mode):
                member.size = info.st_size
            else:
                continue
            yield member.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8",
                               errors="surrogateescape")
            if member.isreg():
                yield from self._content(path, info.st_size)
        yield b"\0" * (2 * BLOCK)  # end of archive

    def _content(self, path: str, size: int) -> Iterator[bytes]:
        """Exactly ``size`` bytes (the header promised them), then padding to a block."""
        remaining = size
        try:
            with (self.root / path).open("rb") as file:
                while remaining and (chunk := file.read(min(CHUNK_SIZE, remaining))):
                    remaining -= len(chunk)
                    yield chunk
        except OSError as error:
            raise LayerError(f"dir:{self.root}: cannot read {path}: {error.strerror}") from error
        if remaining:
            raise LayerError(f"dir:{self.root}: {path} shrank while it was read")
        if size % BLOCK:
            yield b"\0" * (BLOCK - size % BLOCK)
