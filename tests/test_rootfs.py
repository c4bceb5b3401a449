"""``dir:PATH``: an unpacked root filesystem scanned as a one-layer image (the real alpine
3.10.4 layer, unpacked here from the shared ``docker save`` archive)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from scanning.advisories.demo import build_demo_index
from scanning.analysis import analyze_image
from scanning.cli import main
from scanning.errors import NotFound
from scanning.rootfs import DirectorySource

ALPINE = "images/trivy-fanal/alpine-310.tar.gz"


@pytest.fixture(scope="module")
def rootfs(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(testdata / ALPINE) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = archive.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        with tarfile.open(fileobj=layer) as files:
            kept = [m for m in files.getmembers() if m.isfile() or m.isdir() or m.issym()]
            files.extractall(root, members=kept, filter="tar")
    return root


def test_a_root_filesystem_finds_what_the_image_finds(
        rootfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "demo.idx"
    build_demo_index(db)
    capsys.readouterr()
    assert main(["scan", f"dir:{rootfs}", "--db", str(db), "--format", "json"]) == 0
    platform = json.loads(capsys.readouterr().out)["platforms"][0]
    assert (platform["os"], len(platform["packages"]),
            [(f["package"], f["id"]) for f in platform["findings"]]) == (
        {"name": "alpine", "version": "3.10.4"}, 14,
        [("musl", "DEMO-v3.10-0001"), ("musl-utils", "DEMO-v3.10-0001"),
         ("libcrypto1.1", "DEMO-v3.10-0002"), ("libssl1.1", "DEMO-v3.10-0002"),
         ("busybox", "DEMO-v3.10-0003"), ("ssl_client", "DEMO-v3.10-0003")])


def test_the_layer_is_the_same_bytes_every_time(rootfs: Path) -> None:
    first = DirectorySource(rootfs).fetch_manifest("")
    assert first.document == DirectorySource(rootfs).fetch_manifest("").document


def test_a_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/os-release", tmp_path / "etc" / "os-release")
    (inventory,) = analyze_image(f"dir:{tmp_path}").inventories
    assert (inventory.os, inventory.packages) == (None, ())


def test_a_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as raised:
        DirectorySource(tmp_path / "absent")
    assert str(raised.value) == f"{tmp_path / 'absent'}: no such directory"
