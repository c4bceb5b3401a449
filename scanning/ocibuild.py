"""Build small OCI image layouts from files in memory: multi-platform test images and the demo.

``build_oci_layout(dir, [(platform, [layer, ...]), ...], tag)`` writes an OCI image layout
(image-spec ``image-layout.md``): one gzipped tar blob per layer (``{path: bytes}``; a
``Symlink`` value makes a symbolic link, a path whose name starts with ``.wh.`` is a whiteout),
a config with ``rootfs.diff_ids`` and one ``history`` entry per layer, one manifest per image,
and, for more than one image, an image index with a platform per entry. ``index.json`` names
the top manifest with the ``org.opencontainers.image.ref.name`` annotation set to ``tag``, so
``skopeo copy --all oci:DIR:TAG docker://...`` pushes it. Output is deterministic (tar times
and gzip headers are zero), so the same input gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanning.model import Platform

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True, slots=True)
class Symlink:
    target: str


LayerFiles = Mapping[str, "bytes | Symlink"]


def layer_tar(files: LayerFiles) -> bytes:
    """An uncompressed tar of ``files`` with parent directories, sorted, times zero."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            value = files[path]
            info = tarfile.TarInfo(path.strip("/"))
            if isinstance(value, Symlink):
                info.type = tarfile.SYMTYPE
                info.linkname = value.target
                tar.addfile(info)
            else:
                info.size = len(value)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = _digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def json_blob(self, document: Mapping[str, Any], media_type: str,
                  **extra: Any) -> dict[str, Any]:
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return self.blob(data, media_type, **extra)


def build_image(layout: _Layout, platform: Platform,
                layers: Sequence[LayerFiles]) -> dict[str, Any]:
    """Write one image's blobs; return its manifest descriptor (with ``platform``)."""
    descriptors = []
    diff_ids = []
    for files in layers:
        plain = layer_tar(files)
        diff_ids.append(_digest(plain))
        descriptors.append(layout.blob(gzip.compress(plain, mtime=0), OCI_LAYER_GZIP))
    config = {
        "architecture": platform.architecture,
        "os": platform.os,
        **({"variant": platform.variant} if platform.variant else {}),
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created_by": f"COPY layer{number} / # buildkit"}
            for number in range(1, len(layers) + 1)
        ],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.json_blob(config, OCI_CONFIG),
        "layers": descriptors,
    }
    platform_json = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        platform_json["variant"] = platform.variant
    return layout.json_blob(manifest, OCI_MANIFEST, platform=platform_json)


def build_oci_layout(directory: Path,
                     images: Sequence[tuple[Platform, Sequence[LayerFiles]]],
                     tag: str = "latest", *, attestation: bool = False) -> str:
    """Write an OCI layout holding ``images``; return the digest ``tag`` points at.

    ``attestation`` adds a BuildKit-style attestation manifest (platform ``unknown/unknown``,
    annotation ``vnd.docker.reference.type: attestation-manifest``) to the index.
    """
    if not images:
        raise ValueError("at least one image is needed")
    layout = _Layout(directory)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifests = [build_image(layout, platform, layers) for platform, layers in images]
    if attestation:
        statement = layout.blob(b'{"_type":"https://in-toto.io/Statement/v0.1"}',
                                "application/vnd.in-toto+json")
        empty_config = layout.blob(b"{}", OCI_CONFIG)
        manifests.append(layout.json_blob(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty_config,
             "layers": [statement]},
            OCI_MANIFEST,
            platform={"architecture": "unknown", "os": "unknown"},
            annotations={"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": manifests[0]["digest"]},
        ))
    if len(manifests) == 1:
        top = {key: value for key, value in manifests[0].items() if key != "platform"}
    else:
        top = layout.json_blob({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": manifests}, OCI_INDEX)
    top["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]}
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True))
    return str(top["digest"])
