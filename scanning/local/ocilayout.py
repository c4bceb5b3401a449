"""Build real OCI images from files, as an OCI image layout directory skopeo can push.

Follows the OCI image spec v1.1: ``oci-layout`` + ``index.json`` + ``blobs/sha256/<hex>``
(image-layout.md), manifests with a config and gzip layers (manifest.md), and an image index
with one manifest per platform (image-index.md). Layers are reproducible (sorted entries,
mtime 0, root owner, gzip mtime 0), so the same files always give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from scanning.model import Platform

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFile:
    path: str  # inside the image, e.g. "etc/os-release"
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                                 "size": self.size}
        if self.platform is not None:
            value["platform"] = {"architecture": self.platform.architecture,
                                 "os": self.platform.os}
            if self.platform.variant:
                value["platform"]["variant"] = self.platform.variant
        return value


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: Sequence[ImageFile]) -> bytes:
    """An uncompressed, reproducible layer tar; parent directories get their own entries."""
    directories: set[str] = set()
    for item in files:
        parents = PurePosixPath(item.path.strip("/")).parents
        directories.update(str(parent) for parent in parents if str(parent) != ".")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for item in sorted(files, key=lambda entry: entry.path):
            info = tarfile.TarInfo(item.path.strip("/"))
            info.size, info.mode = len(item.content), item.mode
            tar.addfile(info, io.BytesIO(item.content))
    return buffer.getvalue()


class LayoutWriter:
    """Writes blobs into an OCI layout directory and records tagged entries in index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        index_path = root / "index.json"
        existing = json.loads(index_path.read_text()) if index_path.exists() else {}
        self._entries: list[dict[str, Any]] = [
            entry for entry in existing.get("manifests", [])
            if REF_NAME in entry.get("annotations", {})]

    def blob(self, data: bytes, media_type: str, platform: Platform | None = None) -> Descriptor:
        hex_digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hex_digest).write_bytes(data)
        return Descriptor(media_type=media_type, digest=f"sha256:{hex_digest}", size=len(data),
                          platform=platform)

    def image(self, files: Sequence[ImageFile], platform: Platform) -> Descriptor:
        """One image manifest (a single layer holding ``files``) for ``platform``."""
        tar = layer_tar(files)
        layer = self.blob(gzip.compress(tar, mtime=0), LAYER_TYPE)
        config = {
            "architecture": platform.architecture,
            "os": platform.os,
            **({"variant": platform.variant} if platform.variant else {}),
            "config": {},
            "rootfs": {"type": "layers",
                       "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        }
        config_descriptor = self.blob(_canonical(config), CONFIG_TYPE)
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                    "config": config_descriptor.to_json(), "layers": [layer.to_json()]}
        return self.blob(_canonical(manifest), MANIFEST_TYPE, platform)

    def index(self, manifests: Sequence[Descriptor]) -> Descriptor:
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE,
                 "manifests": [manifest.to_json() for manifest in manifests]}
        return self.blob(_canonical(index), INDEX_TYPE)

    def tag(self, descriptor: Descriptor, tag: str) -> None:
        entry = {"mediaType": descriptor.media_type, "digest": descriptor.digest,
                 "size": descriptor.size, "annotations": {REF_NAME: tag}}
        self._entries = [item for item in self._entries
                         if item["annotations"][REF_NAME] != tag] + [entry]
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": self._entries},
            indent=2))


DEMO_PLATFORMS = (Platform(os="linux", architecture="amd64"),
                  Platform(os="linux", architecture="arm64", variant="v8"))


def demo_files(platform: Platform) -> tuple[ImageFile, ...]:
    """A tiny Debian-like root file system: enough for the OS and dpkg analyzers to read."""
    os_release = (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
    )
    return (
        ImageFile(path="etc/os-release", content=os_release.encode()),
        ImageFile(path="etc/debian_version", content=b"12.0\n"),
        ImageFile(path="etc/hostname", content=f"acr-scan-demo-{platform.architecture}\n"
                  .encode()),
    )


def write_demo_image(root: Path, tag: str = "v1") -> Descriptor:
    """The demo image: an index of two platforms, tagged ``tag`` in the layout at ``root``."""
    writer = LayoutWriter(root)
    manifests = [writer.image(demo_files(platform), platform) for platform in DEMO_PLATFORMS]
    index = writer.index(manifests)
    writer.tag(index, tag)
    return index
