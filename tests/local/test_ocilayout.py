from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scanning.local.ocilayout import LayoutWriter, demo_files, write_demo_image
from scanning.model import Platform

AMD64 = Platform(os="linux", architecture="amd64")


def test_manifest_digest_is_sha256_of_the_stored_blob(tmp_path: Path) -> None:
    manifest = LayoutWriter(tmp_path).image(demo_files(AMD64), AMD64)
    blob = (tmp_path / "blobs" / "sha256" / manifest.digest.split(":")[1]).read_bytes()
    assert (manifest.digest, manifest.size) == (
        f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob))


def test_same_files_give_the_same_digest(tmp_path: Path) -> None:
    first = LayoutWriter(tmp_path / "a").image(demo_files(AMD64), AMD64)
    second = LayoutWriter(tmp_path / "b").image(demo_files(AMD64), AMD64)
    assert first == second


def test_demo_image_is_a_tagged_index_of_two_platforms(tmp_path: Path) -> None:
    index = write_demo_image(tmp_path, "v1")
    layout_index = json.loads((tmp_path / "index.json").read_text())
    image_index = json.loads(
        (tmp_path / "blobs" / "sha256" / index.digest.split(":")[1]).read_text())
    assert (
        [(entry["digest"], entry["annotations"]) for entry in layout_index["manifests"]],
        [entry["platform"] for entry in image_index["manifests"]],
    ) == (
        [(index.digest, {"org.opencontainers.image.ref.name": "v1"})],
        [{"architecture": "amd64", "os": "linux"},
         {"architecture": "arm64", "os": "linux", "variant": "v8"}],
    )
