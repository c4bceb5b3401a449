"""End-to-end analysis of the real images in ``../shared/testdata/images`` (read in place).

Expected values come from the reference tools' own fixtures: Trivy's expected package list for
alpine 3.11 (``pkgdb/apk/trivy-image-alpine-311.installed.EXPECTED.trivy.json``), the
go-containerregistry mutate README (whiteout / overwrite images) and osv-scalibr's Dockerfiles
(``images/osv-scalibr-layerscanning/dockerfiles``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanning import analysis
from scanning.analysis import AnalysisStatus, analyze_image
from scanning.analyzers import ANALYZERS
from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.errors import ManifestError
from scanning.inventory import InventoryStatus, merge_layers, resolve_symlinks
from scanning.layers import analyze_tar
from scanning.model import OSInfo, Package, PackageType, Platform
from scanning.ocibuild import build_oci_layout
from scanning.registry import DockerArchiveSource, parse_reference, resolve_image


@dataclass
class FileLister:
    """Test-local analyzer: every regular file becomes a 'package' named by its path."""

    name: str = "files"
    version: int = 1
    max_file_size: int = 1 << 20

    def required(self, path: str, mode: int) -> bool:
        return True

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = file.reader.read().decode("utf-8", "replace").strip()
        return AnalyzerOutput(packages=(Package(type=PackageType.NPM, name=file.path,
                                                version=text[:30], purl="", path=file.path),))


def surviving_files(image: Path) -> list[tuple[str, str, str]]:
    analysis = analyze_image(f"docker-archive:{image}", analyzers=(FileLister(),))
    (inventory,) = analysis.inventories
    numbers = {layer.digest: n for n, layer in enumerate(inventory.layers, start=1)}
    return [(p.name, p.version, f"layer {numbers[p.layer_digest]}") for p in inventory.packages]


def test_alpine_311_archive_matches_trivys_expected_packages(testdata: Path) -> None:
    image = testdata / "images/trivy-fanal/alpine-311.tar.gz"
    expected = json.loads(
        (testdata / "pkgdb/apk/trivy-image-alpine-311.installed.EXPECTED.trivy.json").read_text()
    )["packages"]
    analysis = analyze_image(f"docker-archive:{image}")
    (inventory,) = analysis.inventories
    assert (analysis.status, inventory.platform, inventory.os) == (
        AnalysisStatus.COMPLETE, Platform(os="linux", architecture="amd64"),
        OSInfo(id="alpine", version_id="3.11.5", pretty_name="Alpine Linux v3.11"))
    assert sorted((p.name, p.version, p.source_name, p.source_version, p.arch)
                  for p in inventory.packages) == sorted(
        (e["Name"], e["Version"], e["SrcName"], e["SrcVersion"], e["Arch"]) for e in expected)


def test_alpine_310_packages_carry_layer_and_distro_qualified_purl(testdata: Path) -> None:
    analysis = analyze_image(f"docker-archive:{testdata}/images/trivy-fanal/alpine-310.tar.gz")
    (inventory,) = analysis.inventories
    musl = next(p for p in inventory.packages if p.name == "musl")
    assert musl == Package(
        type=PackageType.APK, name="musl", version="1.1.22-r3",
        purl="pkg:apk/alpine/musl@1.1.22-r3?arch=x86_64&distro=alpine-3.10.4",
        path="lib/apk/db/installed", source_name="musl", source_version="1.1.22-r3",
        arch="x86_64",
        layer_digest="sha256:531743b7098cb2aaf615641007a129173f63ed86ca32fe7b5a246a1c47286028",
        layer_instruction=("ADD file:d48cac34fac385cbc1de6adfdd88300f76f9bbe346cd17e64fd834d04"
                           "2a98326 in /"),
        licenses=("MIT",))
    assert (len(inventory.packages), analysis.digest) == (
        14, "sha256:2944f6376e43c8808bdcf9be31d92a3daa2c14fb5e8497d05e11a75528ff3026")


def test_whiteout_image_keeps_only_bar(testdata: Path) -> None:
    # Layer 1 has foo.txt and bar.txt; layer 2 whites out foo.txt; layer 3 is empty.
    image = testdata / "images/go-containerregistry/mutate/whiteout_image.tar"
    assert surviving_files(image) == [("bar.txt", "bar", "layer 1")]


def test_whiteout_dir_image_removes_the_directory(testdata: Path) -> None:
    image = testdata / "images/go-containerregistry/mutate/whiteout_dir.tar"
    assert surviving_files(image) == [("a/baz", "", "layer 4"), ("b/bar", "", "layer 2")]


def test_file_overwritten_by_a_symlink_loses_its_content(testdata: Path) -> None:
    # Layer 1: foo.txt; layer 2: bar.txt and foo.txt -> bar.txt.
    image = testdata / "images/go-containerregistry/mutate/overwritten_file.tar"
    assert surviving_files(image) == [("bar.txt", "bar", "layer 2")]


def test_overwritten_file_is_attributed_to_the_layer_that_wrote_it_last(testdata: Path) -> None:
    image = testdata / "images/osv-scalibr-layerscanning/overwrite-file.tar"
    assert surviving_files(image) == [("sample.txt", "overwritten sample text file", "layer 2")]


def test_multiple_files_image_lists_every_file_with_its_layer(testdata: Path) -> None:
    image = testdata / "images/osv-scalibr-layerscanning/multiple-files.tar"
    assert surviving_files(image) == [("dir1/bar.txt", "bar", "layer 2"),
                                      ("dir1/baz.txt", "baz", "layer 2"),
                                      ("foo.txt", "foo", "layer 1")]


def merged_symlinks(image: Path) -> dict[str, str | None]:
    source = DockerArchiveSource(image)
    try:
        resolved = resolve_image(source, parse_reference(f"docker-archive:{image}"))
        (platform,) = resolved.platforms
        results = [analyze_tar(source.blob_chunks(layer.digest), digest=layer.digest,
                              analyzers=(), analyzer_version="v") for layer in platform.layers]
    finally:
        source.close()
    merged = merge_layers(platform.layers, results)
    return {link: resolve_symlinks(link, merged.symlinks) for link in sorted(merged.symlinks)}


def test_symlinks_resolve_relative_absolute_and_chained(testdata: Path) -> None:
    links = merged_symlinks(testdata / "images/osv-scalibr-layerscanning/symlink-basic.tar")
    assert links == {"dir1/absolute-symlink.txt": "dir1/sample.txt",
                     "dir1/chain-symlink.txt": "dir1/sample.txt",
                     "dir1/relative-dot-symlink.txt": "dir1/sample.txt",
                     "dir1/relative-symlink.txt": "dir1/sample.txt"}


def test_symlink_cycle_resolves_to_nothing(testdata: Path) -> None:
    links = merged_symlinks(testdata / "images/osv-scalibr-layerscanning/symlink-cycle.tar")
    assert links == {"dir1/absolute-symlink.txt": None, "dir1/chain-symlink.txt": None,
                     "dir1/sample.txt": None}


def test_symlink_attack_stays_inside_the_image_root(testdata: Path) -> None:
    links = merged_symlinks(testdata / "images/osv-scalibr-layerscanning/symlink-attack.tar")
    assert links == {"dir1/attack-symlink-absolute.txt": "secret.txt",
                     "dir1/attack-symlink.txt": "secret.txt"}


def test_symlink_chain_of_seven_resolves_within_the_depth_limit(testdata: Path) -> None:
    links = merged_symlinks(
        testdata / "images/osv-scalibr-layerscanning/symlink-depth-exceeded.tar")
    assert links == {f"dir1/symlink{n}.txt": "dir1/sample.txt" for n in range(1, 8)}


def test_docker_25_archive_is_read_through_its_oci_blobs(testdata: Path) -> None:
    analysis = analyze_image(
        f"docker-archive:{testdata}/images/go-containerregistry/hello-world-v25.tar",
        analyzers=(FileLister(),))
    (inventory,) = analysis.inventories
    assert [(layer.digest, layer.instruction) for layer in inventory.layers] == [
        ("sha256:12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43", "COPY hello /")
    ]
    assert [p.name for p in inventory.packages] == ["hello"]


def test_oci_layout_from_trivy_is_read(testdata: Path) -> None:
    analysis = analyze_image(f"oci:{testdata}/images/trivy-fanal/test.oci",
                             analyzers=(FileLister(),))
    (inventory,) = analysis.inventories
    assert (analysis.digest, [p.name for p in inventory.packages], inventory.status.value) == (
        "sha256:afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab", ["hello"],
        "complete")


def test_archive_without_manifest_json_is_a_clear_error(testdata: Path) -> None:
    with pytest.raises(ManifestError, match=r"has no manifest\.json"):
        analyze_image(f"docker-archive:{testdata}/images/go-containerregistry/no_manifest.tar",
                      analyzers=ANALYZERS)


def test_skipped_apk_record_makes_the_platform_partial_and_keeps_the_rest(
    testdata: Path, tmp_path: Path
) -> None:
    installed = (testdata / "pkgdb" / "apk" / "trivy-image-alpine-311.installed").read_bytes()
    broken = installed.replace(b"\nV:1.31.1-r9\n", b"\nV:1.31.1 r9\n", 1)  # busybox only
    amd64 = Platform(os="linux", architecture="amd64")
    build_oci_layout(tmp_path, [(amd64, [{"etc/alpine-release": b"3.11.5\n",
                                          "lib/apk/db/installed": broken}])], tag="v1")
    analysis = analyze_image(f"oci:{tmp_path}:v1")
    (inventory,) = analysis.inventories
    assert (analysis.status, inventory.status) == (AnalysisStatus.PARTIAL, InventoryStatus.PARTIAL)
    assert len(inventory.packages) == 13
    assert "busybox" not in {p.name for p in inventory.packages}
    assert inventory.warnings == (
        f"layer {inventory.layers[0].digest}: apk: lib/apk/db/installed line 25: "
        "package busybox: malformed version '1.31.1 r9'; entry skipped",
    )


def test_alpine_upgraded_from_newer_repositories_says_the_branch_it_is_matched_as(
    testdata: Path, tmp_path: Path
) -> None:
    installed = (testdata / "pkgdb" / "apk" / "trivy-image-alpine-310.installed").read_bytes()
    repositories = b"https://dl-cdn.alpinelinux.org/alpine/v3.12/main\n"
    amd64 = Platform(os="linux", architecture="amd64")
    build_oci_layout(tmp_path, [(amd64, [{"etc/alpine-release": b"3.10.4\n",
                                          "lib/apk/db/installed": installed},
                                         {"etc/apk/repositories": repositories}])], tag="v1")
    (inventory,) = analyze_image(f"oci:{tmp_path}:v1").inventories
    assert inventory.os == OSInfo(id="alpine", version_id="3.10.4", branch="v3.12")
    assert inventory.to_json()["os"] == {"id": "alpine", "version_id": "3.10.4", "codename": "",
                                         "pretty_name": "", "branch": "v3.12"}


def test_file_over_an_analyzers_cap_makes_the_platform_partial(tmp_path: Path) -> None:
    amd64 = Platform(os="linux", architecture="amd64")
    build_oci_layout(tmp_path, [(amd64, [{"small.txt": b"1", "big.txt": b"x" * (2 << 20)}])],
                     tag="v1")
    analysis = analyze_image(f"oci:{tmp_path}:v1", analyzers=(FileLister(),))
    (inventory,) = analysis.inventories
    assert (analysis.status, inventory.status) == (AnalysisStatus.PARTIAL, InventoryStatus.PARTIAL)
    assert [p.name for p in inventory.packages] == ["small.txt"]
    assert inventory.warnings == (
        f"layer {inventory.layers[0].digest}: big.txt: 2097152 bytes is over files's cap of "
        "1048576; not analyzed",
    )


def test_inventory_lists_a_bounded_number_of_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analysis, "MAX_INVENTORY_WARNINGS", 2)
    amd64 = Platform(os="linux", architecture="amd64")
    build_oci_layout(tmp_path, [(amd64, [{f"big{n}.txt": b"x" * (2 << 20) for n in range(4)}])],
                     tag="v1")
    (inventory,) = analyze_image(f"oci:{tmp_path}:v1", analyzers=(FileLister(),)).inventories
    digest = inventory.layers[0].digest
    assert inventory.warnings == (
        f"layer {digest}: big0.txt: 2097152 bytes is over files's cap of 1048576; not analyzed",
        f"layer {digest}: big1.txt: 2097152 bytes is over files's cap of 1048576; not analyzed",
        "2 more warnings not listed",
    )
