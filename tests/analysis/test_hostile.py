"""Hostile images end to end: repeated layer digests, entry caps (local OCI layouts, no servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from scanning.analysis import AnalysisStatus, analyze_image
from scanning.inventory import InventoryStatus
from scanning.layers import LayerLimits
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout
from scanning.registry import OciLayoutSource, parse_reference

AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64")
OS_RELEASE = b"ID=alpine\nVERSION_ID=3.19.1\n"


class CountingLayoutSource(OciLayoutSource):
    """Records every layer blob read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        self.reads.append(digest)
        return super().blob_chunks(digest)


def test_layer_digest_listed_three_times_is_read_once(tmp_path: Path) -> None:
    layer = {"etc/os-release": OS_RELEASE}
    build_oci_layout(tmp_path, [(AMD64, [layer, layer, layer])])
    source = CountingLayoutSource(tmp_path)
    analysis = analyze_image(parse_reference(f"oci:{tmp_path}"), source=source)
    (inventory,) = analysis.inventories
    assert (len(inventory.layers), source.reads) == (3, [inventory.layers[0].digest])


def test_layer_shared_by_two_platforms_is_read_once(tmp_path: Path) -> None:
    base = {"etc/os-release": OS_RELEASE}
    build_oci_layout(tmp_path, [(AMD64, [base, {"a": b"1"}]), (ARM64, [base, {"b": b"2"}])])
    source = CountingLayoutSource(tmp_path)
    analysis = analyze_image(parse_reference(f"oci:{tmp_path}"), source=source)
    first, second = analysis.inventories
    assert sorted(source.reads) == sorted(
        {first.layers[0].digest, first.layers[1].digest, second.layers[1].digest})


def test_unreadable_layer_of_two_platforms_is_read_once_and_fails_both(tmp_path: Path) -> None:
    base = {"etc/os-release": OS_RELEASE}
    build_oci_layout(tmp_path, [(AMD64, [base]), (ARM64, [base])])
    source = CountingLayoutSource(tmp_path)
    analysis = analyze_image(parse_reference(f"oci:{tmp_path}"), source=source,
                             limits=LayerLimits(max_decompressed_bytes=100))
    assert ([inventory.status for inventory in analysis.inventories], len(source.reads)) == (
        [InventoryStatus.FAILED, InventoryStatus.FAILED], 1)


def test_layer_over_the_entry_cap_makes_the_platform_partial_naming_the_cap(
        tmp_path: Path) -> None:
    files = {f"srv/f{number}": b"" for number in range(10)}
    build_oci_layout(tmp_path, [(AMD64, [{"etc/os-release": OS_RELEASE}, files])])
    analysis = analyze_image(parse_reference(f"oci:{tmp_path}"),
                             limits=LayerLimits(max_entries=5))
    (inventory,) = analysis.inventories
    cap_error = (f"layer {inventory.layers[1].digest}: more than 5 entries (MAX_LAYER_ENTRIES); "
                 "entries past the cap were not read")
    assert (analysis.status, analysis.reason, inventory.status, inventory.errors) == (
        AnalysisStatus.PARTIAL, f"some files could not be analyzed: {cap_error}",
        InventoryStatus.PARTIAL, (cap_error,))
