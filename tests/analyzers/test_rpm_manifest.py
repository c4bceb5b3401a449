"""Distroless CBL-Mariner / Azure Linux rpm manifest (``var/lib/rpmmanifest/container-manifest-2``).

Fixtures: ``../shared/testdata/pkgdb/rpm/rpmmanifest/`` (Syft's copy from the CBL-Mariner 2.0
distroless base image, and Trivy's rpmqa test content), with the parses Syft and Trivy expect.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanning.analyzers import ANALYZERS
from scanning.analyzers.base import AnalyzerInput
from scanning.analyzers.rpm_manifest import MANIFEST_PATH, RpmManifestAnalyzer
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

MANIFESTS = "pkgdb/rpm/rpmmanifest"


def analyze(data: bytes) -> tuple[Package, ...]:
    return RpmManifestAnalyzer().analyze(
        AnalyzerInput(path=MANIFEST_PATH, size=len(data), reader=io.BytesIO(data))
    ).packages


def test_syft_mariner_2_manifest_matches_syfts_parse(testdata: Path) -> None:
    folder = testdata / MANIFESTS
    expected = json.loads((folder / "syft_cbl-mariner-2.0_container-manifest-2.EXPECTED.json")
                          .read_text())
    packages = analyze((folder / "syft_cbl-mariner-2.0_container-manifest-2").read_bytes())
    assert [(p.name, p.version, p.arch, p.source_name) for p in packages] == [
        (e["name"], e["syft_version"], e["arch"], e["sourceRpm"].rsplit("-", 2)[0])
        for e in expected
    ]


def test_trivy_manifest_matches_trivys_parse(testdata: Path) -> None:
    folder = testdata / MANIFESTS
    expected = json.loads((folder / "trivy_rpmqa-test_container-manifest-2.EXPECTED.json")
                          .read_text())
    packages = analyze((folder / "trivy_rpmqa-test_container-manifest-2").read_bytes())

    def evr(epoch: int, version: str, release: str) -> str:
        return f"{epoch}:{version}-{release}" if epoch else f"{version}-{release}"

    assert [(p.name, p.version, p.arch, p.source_name, p.source_version) for p in packages] == [
        (e["name"], evr(e["epoch"], e["version"], e["release"]), e["arch"], e["srcName"],
         evr(e["srcEpoch"], e["srcVersion"], e["srcRelease"]))
        for e in expected
    ]


def test_package_is_written_like_the_rpmdb_analyzer_writes_it() -> None:
    line = (b"ca-certificates-base\t3.0.0-8.azl3\t1\t2\tMicrosoft Corporation\t1\t10\tnoarch\t1\t"
            b"ca-certificates-3.0.0-8.azl3.src.rpm\n")
    assert analyze(line) == (Package(
        type=PackageType.RPM, name="ca-certificates-base", version="1:3.0.0-8.azl3",
        purl="pkg:rpm/ca-certificates-base@3.0.0-8.azl3?arch=noarch&epoch=1",
        path=MANIFEST_PATH, source_name="ca-certificates", source_version="1:3.0.0-8.azl3",
        arch="noarch"),)


def test_line_with_too_few_fields_names_the_line(testdata: Path) -> None:
    data = (testdata / MANIFESTS / "trivy_rpmqa-test_sad.container-manifest-2").read_bytes()
    with pytest.raises(AnalyzerError) as raised:
        analyze(data)
    assert str(raised.value) == (
        f"rpm-manifest: {MANIFEST_PATH}: line 1: 4 tab-separated fields, expected 10"
    )


def test_version_without_release_is_an_error() -> None:
    with pytest.raises(AnalyzerError, match=r"line 1: '2\.0' is not VERSION-RELEASE"):
        analyze(b"a\t2.0\t1\t2\tv\t(none)\t1\tx86_64\t0\ta-2.0-1.src.rpm")


def test_only_the_manifest_path_is_required() -> None:
    analyzer = RpmManifestAnalyzer()
    assert (analyzer.required(MANIFEST_PATH, 0o100644),
            analyzer.required("var/lib/rpmmanifest/container-manifest-1", 0o100644),
            "rpm-manifest" in {a.name for a in ANALYZERS}) == (
        True, False, True)
