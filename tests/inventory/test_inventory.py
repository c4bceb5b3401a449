"""Merging layer results: whiteouts, replacement, attribution, symlinks, JSON round trips."""

from __future__ import annotations

import dataclasses

import pytest
from layers.helpers import pypi

from scanning.errors import InventoryError
from scanning.inventory import ImageInventory, InventoryStatus, merge_layers, resolve_symlinks
from scanning.layer_types import AnalyzedFile, LayerInfo, LayerResult, normalize_member_path
from scanning.model import OSInfo, PackageType, Platform

LAYERS = tuple(
    LayerInfo(digest=f"sha256:{str(n) * 64}", size=n, instruction=f"RUN step {n}")
    for n in range(1, 5)
)


def layer(n: int, **fields: object) -> LayerResult:
    base = dict(digest=LAYERS[n - 1].digest, analyzer_set_version="v", compression="gzip",
                compressed_size=1, uncompressed_size=1, entries=1)
    return LayerResult(**{**base, **fields})  # type: ignore[arg-type]


def listed(path: str, *packages: tuple[str, str]) -> AnalyzedFile:
    return AnalyzedFile(path=path, analyzer="list",
                        packages=tuple(pypi(name, version, path) for name, version in packages))


def at(n: int, name: str, version: str, path: str) -> object:
    info = LAYERS[n - 1]
    return pypi(name, version, path, info.digest, info.instruction)


def test_upgraded_package_is_attributed_to_the_layer_that_changed_it() -> None:
    results = [layer(1, files=(listed("p/pkgs.txt", ("six", "1.0"), ("idna", "3.0")),)),
               layer(2, files=(listed("p/pkgs.txt", ("six", "2.0"), ("idna", "3.0")),))]
    merged = merge_layers(LAYERS[:2], results)
    assert merged.packages == (at(1, "idna", "3.0", "p/pkgs.txt"),
                               at(2, "six", "2.0", "p/pkgs.txt"))


def test_unchanged_package_keeps_the_layer_that_introduced_it_across_rewrites() -> None:
    results = [layer(1, files=(listed("p/pkgs.txt", ("six", "1.0")),)),
               layer(2, files=(listed("p/pkgs.txt", ("six", "1.0"), ("idna", "3.0")),)),
               layer(3, files=(listed("p/pkgs.txt", ("six", "1.0"), ("idna", "3.0")),))]
    merged = merge_layers(LAYERS[:3], results)
    assert merged.packages == (at(2, "idna", "3.0", "p/pkgs.txt"),
                               at(1, "six", "1.0", "p/pkgs.txt"))


def test_package_removed_by_a_later_rewrite_is_gone() -> None:
    results = [layer(1, files=(listed("p/pkgs.txt", ("six", "1.0"), ("idna", "3.0")),)),
               layer(2, files=(listed("p/pkgs.txt", ("idna", "3.0")),))]
    assert merge_layers(LAYERS[:2], results).packages == (at(1, "idna", "3.0", "p/pkgs.txt"),)


def test_whiteout_of_a_file_removes_its_packages() -> None:
    results = [layer(1, files=(listed("a/pkgs.txt", ("six", "1.0")),
                               listed("b/pkgs.txt", ("idna", "3.0")))),
               layer(2, whiteouts=("a/pkgs.txt",))]
    assert merge_layers(LAYERS[:2], results).packages == (at(1, "idna", "3.0", "b/pkgs.txt"),)


def test_whiteout_of_a_directory_removes_everything_under_it() -> None:
    results = [layer(1, files=(listed("venv/lib/x/pkgs.txt", ("six", "1.0")),
                               listed("venvx/pkgs.txt", ("idna", "3.0")))),
               layer(2, whiteouts=("venv",))]
    assert merge_layers(LAYERS[:2], results).packages == (at(1, "idna", "3.0", "venvx/pkgs.txt"),)


def test_opaque_directory_hides_lower_layers_but_not_its_own_layer() -> None:
    results = [layer(1, files=(listed("app/old/pkgs.txt", ("six", "1.0")),)),
               layer(2, opaque_dirs=("app",), files=(listed("app/new/pkgs.txt", ("idna", "3.0")),))]
    assert merge_layers(LAYERS[:2], results).packages == (at(2, "idna", "3.0", "app/new/pkgs.txt"),)


def test_file_whited_out_and_added_again_is_attributed_to_the_new_layer() -> None:
    results = [layer(1, files=(listed("pkgs.txt", ("six", "1.0")),)),
               layer(2, whiteouts=("pkgs.txt",)),
               layer(3, files=(listed("pkgs.txt", ("six", "1.0")),))]
    assert merge_layers(LAYERS[:3], results).packages == (at(3, "six", "1.0", "pkgs.txt"),)


def test_symlink_replacing_a_file_removes_its_packages() -> None:
    results = [layer(1, files=(listed("pkgs.txt", ("six", "1.0")),)),
               layer(2, symlinks=(("pkgs.txt", "/dev/null"),))]
    merged = merge_layers(LAYERS[:2], results)
    assert (merged.packages, dict(merged.symlinks)) == ((), {"pkgs.txt": "/dev/null"})


def test_symlink_replacing_a_directory_removes_the_links_under_it() -> None:
    results = [layer(1, symlinks=(("app/current", "v1"), ("app/v1/lib", "/usr/lib"))),
               layer(2, symlinks=(("app", "/opt/app"),))]
    assert dict(merge_layers(LAYERS[:2], results).symlinks) == {"app": "/opt/app"}


def test_whiteouts_and_links_over_thousands_of_files_remove_exactly_those_files() -> None:
    # 20,000 files, then 10,000 whiteouts and 10,000 symlinks over them: each removal touches
    # its own path only (bench/bench_hostile.py times the same case at full size).
    count = 20_000
    results = [layer(1, files=tuple(listed(f"d{i}/pkgs.txt", (f"p{i}", "1.0"))
                                    for i in range(count))),
               layer(2, whiteouts=tuple(f"d{i}" for i in range(0, count, 2)),
                     symlinks=tuple((f"d{i}/pkgs.txt", "/dev/null")
                                    for i in range(1, count, 2)))]
    merged = merge_layers(LAYERS[:2], results)
    assert (merged.packages, dict(merged.symlinks)) == (
        (), {f"d{i}/pkgs.txt": "/dev/null" for i in range(1, count, 2)})


def test_errors_of_a_layer_result_are_errors_of_the_merge() -> None:
    results = [layer(1, errors=("more than 10 entries (MAX_LAYER_ENTRIES); entries past the "
                                "cap were not read",))]
    assert merge_layers(LAYERS[:1], results).errors == (
        f"layer {LAYERS[0].digest}: more than 10 entries (MAX_LAYER_ENTRIES); entries past "
        "the cap were not read",)


def test_analyzer_errors_past_the_inventory_limit_are_counted_not_kept() -> None:
    results = [layer(1, files=tuple(AnalyzedFile(path=f"f{i:04d}", analyzer="list", error="bad")
                                    for i in range(1005)))]
    errors = merge_layers(LAYERS[:1], results).errors
    assert (len(errors), errors[0], errors[-1]) == (
        1001, f"analyzer list failed on f0000 (layer {LAYERS[0].digest}): bad",
        "... and 5 more not listed")


def test_merge_stops_at_the_node_cap_with_an_error_naming_it() -> None:
    results = [layer(1, files=(listed("a/pkgs.txt", ("six", "1.0")),)),
               layer(2, symlinks=tuple((f"d{i}/x/y", "t") for i in range(5)))]
    merged = merge_layers(LAYERS[:2], results, max_nodes=8)
    assert (merged.packages, merged.errors) == (
        (at(1, "six", "1.0", "a/pkgs.txt"),),
        (f"layer {LAYERS[1].digest}: the image holds more than 8 path components (merge cap); "
         "this layer and those above it were merged in part or not at all",))


def test_os_release_reached_through_a_symlink_decides_the_os() -> None:
    debian = OSInfo(id="debian", version_id="12", codename="bookworm")
    results = [layer(1, files=(AnalyzedFile(path="usr/lib/os-release", analyzer="os-release",
                                            os=debian),),
                     symlinks=(("etc/os-release", "../usr/lib/os-release"),))]
    assert merge_layers(LAYERS[:1], results).os == debian


def test_analyzer_errors_of_files_still_present_are_reported() -> None:
    results = [layer(1, files=(AnalyzedFile(path="pkgs.txt", analyzer="list", error="bad"),))]
    assert merge_layers(LAYERS[:1], results).errors == (
        f"analyzer list failed on pkgs.txt (layer {LAYERS[0].digest}): bad",)


@pytest.mark.parametrize(("path", "expected"), [
    ("dir1/absolute-symlink.txt", "dir1/sample.txt"),
    ("dir1/relative-symlink.txt", "dir1/sample.txt"),
    ("dir1/chain-symlink.txt", "dir1/sample.txt"),
    ("lib/x.so", "usr/lib/x.so"),
    ("dir1/attack.txt", "secret.txt"),
    ("dir1/loop-a", None),
])
def test_symlinks_resolve_inside_the_root_and_cycles_give_none(path: str,
                                                                expected: str | None) -> None:
    symlinks = {
        "dir1/absolute-symlink.txt": "/dir1/sample.txt",
        "dir1/relative-symlink.txt": "sample.txt",
        "dir1/chain-symlink.txt": "absolute-symlink.txt",
        "lib": "usr/lib",
        "dir1/attack.txt": "../../../../secret.txt",
        "dir1/loop-a": "loop-b",
        "dir1/loop-b": "/dir1/loop-a",
    }
    assert resolve_symlinks(path, symlinks) == expected


def test_symlink_chain_longer_than_the_depth_limit_gives_none() -> None:
    symlinks = {f"l{n}": f"l{n - 1}" for n in range(1, 8)}
    assert (resolve_symlinks("l7", symlinks, max_depth=6),
            resolve_symlinks("l7", symlinks, max_depth=7)) == (None, "l0")


def test_symlink_target_longer_than_path_max_resolves_to_nothing() -> None:
    # A 1 MB target (as a PAX linkpath allows): Linux refuses it with ENAMETOOLONG.
    assert resolve_symlinks("link", {"link": "a/" * 500_000}) is None


def test_symlink_target_of_path_max_bytes_is_followed() -> None:
    assert resolve_symlinks("link", {"link": "a/" * 2048}) == "/".join(["a"] * 2048)


def test_path_longer_than_path_max_resolves_to_nothing() -> None:
    assert resolve_symlinks("a/" * 2049, {}) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("/etc/passwd", "etc/passwd"), ("./a/./b", "a/b"), ("../../x", "x"), ("a/../../b", "b"),
    ("/", ""), ("usr/lib/x.so", "usr/lib/x.so"), (".hidden/a", ".hidden/a"), ("a/.b/c", "a/.b/c"),
    ("a/b/", "a/b"), ("a//b", "a/b"), ("a\\b", "a/b"), (".", ""), ("..", ""), ("a/..", ""),
    ("..a/b", "..a/b"),
])
def test_member_names_are_normalised_inside_the_root(name: str, expected: str) -> None:
    assert normalize_member_path(name) == expected


def test_layer_result_json_round_trips() -> None:
    result = layer(1, files=(listed("p/pkgs.txt", ("six", "1.0")),
                             AnalyzedFile(path="etc/os-release", analyzer="os",
                                          os=OSInfo(id="alpine", version_id="3.19"))),
                   whiteouts=("a",), opaque_dirs=("b",), symlinks=(("c", "d"),),
                   hardlinks=(("e", "f"),), warnings=("w",))
    assert LayerResult.from_json(result.to_json()) == result


def test_skipped_entries_of_an_analyzed_file_round_trip() -> None:
    item = dataclasses.replace(listed("p/pkgs.txt", ("six", "1.0")),
                               warnings=("list: p/pkgs.txt line 2: bad; entry skipped",))
    result = layer(1, files=(item,))
    assert LayerResult.from_json(result.to_json()) == result


def test_layer_cache_json_from_before_skipped_entries_is_read() -> None:
    data = layer(1, files=(listed("p/pkgs.txt", ("six", "1.0")),)).to_json()
    assert "warnings" not in data["files"][0]
    assert LayerResult.from_json(data).files[0].warnings == ()


def test_skipped_entries_of_a_file_at_the_top_are_merged_warnings() -> None:
    item = dataclasses.replace(listed("p/pkgs.txt", ("six", "1.0")),
                               warnings=("list: p/pkgs.txt line 2: bad; entry skipped",))
    merged = merge_layers(LAYERS[:1], [layer(1, files=(item,))])
    assert merged.warnings == (
        f"layer {LAYERS[0].digest}: list: p/pkgs.txt line 2: bad; entry skipped",
    )


def test_skipped_entries_of_a_replaced_file_are_not_warnings() -> None:
    item = dataclasses.replace(listed("p/pkgs.txt", ("six", "1.0")),
                               warnings=("list: p/pkgs.txt line 2: bad; entry skipped",))
    results = [layer(1, files=(item,)), layer(2, files=(listed("p/pkgs.txt", ("six", "2.0")),))]
    assert merge_layers(LAYERS[:2], results).warnings == ()


def test_image_inventory_json_round_trips() -> None:
    package = dataclasses.replace(pypi("six", "1.0", "p", LAYERS[0].digest, "RUN x"),
                                  type=PackageType.DPKG, source_name="six-src", arch="amd64",
                                  licenses=("MIT",))
    inventory = ImageInventory(
        reference="r/x:1", image_digest="sha256:" + "a" * 64, manifest_digest="sha256:" + "b" * 64,
        config_digest="sha256:" + "c" * 64, platform=Platform(os="linux", architecture="arm",
                                                              variant="v7"),
        analyzer_set_version="abc", status=InventoryStatus.PARTIAL,
        os=OSInfo(id="debian", version_id="12"), packages=(package,), layers=LAYERS[:1],
        errors=("e",), warnings=("w",))
    assert ImageInventory.from_json(inventory.to_json()) == inventory


def test_inventory_of_an_unknown_schema_version_is_refused() -> None:
    with pytest.raises(InventoryError, match="inventory schema 99 unknown"):
        ImageInventory.from_json({"schema_version": 99})
