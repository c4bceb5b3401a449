"""The pipeline against real servers: images pushed to the local registry with skopeo, the
layer cache in a directory and in Azurite, multi-arch and distroless-style images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.analysis import AnalysisStatus, analyze_image
from scanning.analyzers import ANALYZERS
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.layercache import LocalLayerCache
from scanning.local.services import skopeo_copy
from scanning.model import OSInfo, Platform
from scanning.ocibuild import build_oci_layout
from scanning.registry import HttpRegistrySource, parse_reference
from scanning.store.layer_cache import BlobLayerCache

pytestmark = pytest.mark.integration

AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64")

DEBIAN_OS_RELEASE = (b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                     b'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n')
ALPINE_OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'


def dpkg_entry(name: str, version: str, source: str = "") -> bytes:
    lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64",
             f"Version: {version}"]
    if source:
        lines.append(f"Source: {source}")
    return ("\n".join(lines) + "\n").encode()


def apk_db(*packages: tuple[str, str]) -> bytes:
    return b"".join(f"P:{n}\nV:{v}\nA:aarch64\no:{n}\n\n".encode() for n, v in packages)


class CountingSource(HttpRegistrySource):
    """Counts layer blob downloads."""

    downloads: list[str]

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        self.downloads.append(digest)
        return super().blob_chunks(digest)


def counting(reference: str) -> CountingSource:
    parsed = parse_reference(reference)
    source = CountingSource(parsed.registry, parsed.repository)
    source.downloads = []
    return source


BASE_LAYER = {"etc/os-release": DEBIAN_OS_RELEASE,
              "var/lib/dpkg/status": dpkg_entry("libc6", "2.36-9") + b"\n"
              + dpkg_entry("zlib1g", "1:1.2.13.dfsg-1", "zlib")}


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Push: a two-platform index; two images sharing a base layer; a distroless image."""
    references = {}
    multi = tmp_path_factory.mktemp("multi")
    build_oci_layout(multi, [
        (AMD64, [BASE_LAYER]),
        (ARM64, [{"etc/os-release": ALPINE_OS_RELEASE,
                  "lib/apk/db/installed": apk_db(("musl", "1.2.4-r2"))}]),
    ], tag="v1", attestation=True)
    for name, layers in {
        "first": [BASE_LAYER, {"srv/one.txt": b"1"}],
        "second": [BASE_LAYER, {"srv/two.txt": b"2"},
                   {"var/lib/dpkg/status": dpkg_entry("libc6", "2.36-9") + b"\n"
                    + dpkg_entry("zlib1g", "1:1.2.13.dfsg-2", "zlib")}],
    }.items():
        layout = tmp_path_factory.mktemp(name)
        build_oci_layout(layout, [(AMD64, layers)], tag="v1")
        skopeo_copy(f"oci:{layout}:v1", f"docker://{registry.host}/shared/{name}:v1")
        references[name] = f"{registry.host}/shared/{name}:v1"
    distroless = tmp_path_factory.mktemp("distroless")
    build_oci_layout(distroless, [(AMD64, [{
        "usr/lib/os-release": DEBIAN_OS_RELEASE,
        "var/lib/dpkg/status.d/base-files": dpkg_entry("base-files", "12.4+deb12u5"),
        "var/lib/dpkg/status.d/libssl3": dpkg_entry("libssl3", "3.0.11-1~deb12u2", "openssl"),
    }])], tag="v1")
    skopeo_copy(f"oci:{distroless}:v1", f"docker://{registry.host}/distroless/base:v1")
    skopeo_copy(f"oci:{multi}:v1", f"docker://{registry.host}/multi/app:v1")
    references["multi"] = f"{registry.host}/multi/app:v1"
    references["distroless"] = f"{registry.host}/distroless/base:v1"
    return references


def names(inventory: ImageInventory) -> list[tuple[str, str, str]]:
    return [(p.name, p.version, p.purl) for p in inventory.packages]


def test_multi_arch_index_gives_one_inventory_per_platform(images: dict[str, str]) -> None:
    analysis = analyze_image(images["multi"])
    amd64, arm64 = analysis.inventories
    assert (analysis.status, [s.reason for s in analysis.skipped]) == (
        AnalysisStatus.COMPLETE, ["attestation manifest"])
    assert (amd64.platform, amd64.os, names(amd64)) == (AMD64, OSInfo(
        id="debian", version_id="12", codename="bookworm",
        pretty_name="Debian GNU/Linux 12 (bookworm)"), [
        ("libc6", "2.36-9", "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12"),
        ("zlib1g", "1:1.2.13.dfsg-1",
         "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"),
    ])
    assert (arm64.platform, arm64.os and arm64.os.id, names(arm64)) == (ARM64, "alpine", [
        ("musl", "1.2.4-r2", "pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64&distro=alpine-3.19.1"),
    ])


def test_platform_option_scans_only_that_platform(images: dict[str, str]) -> None:
    analysis = analyze_image(images["multi"], platform=ARM64)
    assert [str(i.platform) for i in analysis.inventories] == ["linux/arm64"]


def test_distroless_status_d_and_usr_lib_os_release(images: dict[str, str]) -> None:
    (inventory,) = analyze_image(images["distroless"]).inventories
    assert (inventory.os and inventory.os.id, inventory.os and inventory.os.version_id,
            [(p.name, p.version, p.source, p.path) for p in inventory.packages]) == (
        "debian", "12", [
            ("base-files", "12.4+deb12u5", "base-files", "var/lib/dpkg/status.d/base-files"),
            ("libssl3", "3.0.11-1~deb12u2", "openssl", "var/lib/dpkg/status.d/libssl3"),
        ])


def test_upgrade_in_a_later_layer_is_attributed_to_that_layer(images: dict[str, str]) -> None:
    (inventory,) = analyze_image(images["second"]).inventories
    layer_of = {p.name: inventory.layers.index(next(
        layer for layer in inventory.layers if layer.digest == p.layer_digest)) + 1
        for p in inventory.packages}
    assert ([(p.name, p.version) for p in inventory.packages], layer_of) == (
        [("libc6", "2.36-9"), ("zlib1g", "1:1.2.13.dfsg-2")], {"libc6": 1, "zlib1g": 3})


def test_second_image_reads_only_its_new_layers_with_a_local_cache(
        images: dict[str, str], tmp_path: Path) -> None:
    cache = LocalLayerCache(tmp_path)
    first, second = counting(images["first"]), counting(images["second"])
    analyze_image(images["first"], cache=cache, source=first)
    analysis = analyze_image(images["second"], cache=cache, source=second)
    layers = analysis.inventories[0].layers
    assert (len(first.downloads), second.downloads) == (2, [layers[1].digest, layers[2].digest])


def test_warm_blob_cache_rescan_downloads_no_layer(images: dict[str, str], azurite) -> None:  # type: ignore[no-untyped-def]
    cache = BlobLayerCache.from_connection_string(azurite.connection_string)
    cold, warm = counting(images["second"]), counting(images["second"])
    before = analyze_image(images["second"], cache=cache, source=cold)
    after = analyze_image(images["second"], cache=cache, source=warm)
    assert (len(cold.downloads), warm.downloads, after.inventories) == (
        3, [], before.inventories)


def test_real_analyzers_run_on_registry_images(images: dict[str, str]) -> None:
    analysis = analyze_image(images["first"], analyzers=ANALYZERS)
    assert analysis.inventories[0].status is InventoryStatus.COMPLETE


def test_corrupt_layer_fails_the_platform_naming_the_layer(images: dict[str, str]) -> None:
    class Corrupting(CountingSource):
        def blob_chunks(self, digest: str) -> Iterator[bytes]:
            for chunk in super().blob_chunks(digest):
                yield chunk[:-1] + bytes([chunk[-1] ^ 1])

    parsed = parse_reference(images["first"])
    source = Corrupting(parsed.registry, parsed.repository)
    source.downloads = []
    analysis = analyze_image(images["first"], source=source)
    (inventory,) = analysis.inventories
    assert (analysis.status, inventory.status, inventory.packages) == (
        AnalysisStatus.FAILED, InventoryStatus.FAILED, ())
    assert analysis.reason.startswith(f"layer 1/2 {inventory.layers[0].digest}: layer ")
