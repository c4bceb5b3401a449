"""apk analyzer: lib/apk/db/installed, against Trivy's parse of Alpine 3.11.5."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanning.analyzers.apk import ApkAnalyzer
from scanning.analyzers.base import AnalyzerInput
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = ApkAnalyzer()
DB = "lib/apk/db/installed"

Row = tuple[str, str, str, str, str]


def analyze_bytes(data: bytes) -> tuple[Package, ...]:
    return ANALYZER.analyze(
        AnalyzerInput(path=DB, size=len(data), reader=io.BytesIO(data))
    ).packages


def rows(packages: tuple[Package, ...]) -> list[Row]:
    return sorted((p.name, p.version, p.source_name, p.source_version, p.arch) for p in packages)


# Trivy maps non-SPDX licence names to SPDX ids; we keep what the database says. These are the
# packages of alpine 3.11.5 where that makes a difference: name -> (ours, Trivy's).
LICENSE_DIFFERENCES = {
    "libc-utils": (("BSD",), ("BSD-3-Clause",)),
    "musl-utils": (("MIT", "BSD", "GPL2+"), ("MIT", "BSD-3-Clause", "GPL-2.0-or-later")),
    "apk-tools": (("GPL2",), ("GPL-2.0-only",)),
}


def test_alpine_311_equals_trivy_parse(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "apk"
    expected = json.loads(
        (folder / "trivy-image-alpine-311.installed.EXPECTED.trivy.json").read_text()
    )
    want = sorted(
        (p["Name"], p["Version"], p["SrcName"], p["SrcVersion"], p["Arch"])
        for p in expected["packages"]
    )

    packages = analyze_bytes((folder / "trivy-image-alpine-311.installed").read_bytes())

    assert rows(packages) == want
    assert len(want) == 14


def test_alpine_311_licenses_equal_trivy_except_spdx_mapping(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "apk"
    expected = json.loads(
        (folder / "trivy-image-alpine-311.installed.EXPECTED.trivy.json").read_text()
    )
    trivy = {p["Name"]: tuple(p["Licenses"]) for p in expected["packages"]}
    packages = analyze_bytes((folder / "trivy-image-alpine-311.installed").read_bytes())
    ours = {p.name: p.licenses for p in packages}

    for name, (our_licenses, trivy_licenses) in LICENSE_DIFFERENCES.items():
        assert (ours.pop(name), trivy.pop(name)) == (our_licenses, trivy_licenses)
    assert ours == trivy


def test_package_from_subpackage_has_origin_as_source(testdata: Path) -> None:
    packages = analyze_bytes(
        (testdata / "pkgdb" / "apk" / "trivy-image-alpine-311.installed").read_bytes()
    )
    libssl = next(p for p in packages if p.name == "libssl1.1")
    assert libssl == Package(
        type=PackageType.APK,
        name="libssl1.1",
        version="1.1.1d-r3",
        purl="pkg:apk/libssl1.1@1.1.1d-r3?arch=x86_64",
        path=DB,
        source_name="openssl",
        source_version="1.1.1d-r3",
        arch="x86_64",
        licenses=("OpenSSL",),
    )


def test_record_without_version_is_skipped_and_no_final_newline_is_accepted(
    testdata: Path,
) -> None:
    # Trivy's analyzer fixture: 16 P: lines, one ("invalidPackageWithoutAVersion") has no V:.
    data = (testdata / "pkgdb" / "apk" / "trivy-analyzer-apk.installed").read_bytes()
    assert not data.endswith(b"\n")
    names = [p.name for p in analyze_bytes(data)]
    assert len(names) == 15
    assert "invalidPackageWithoutAVersion" not in names


@pytest.mark.parametrize(
    ("file", "count"),
    [
        ("trivy-image-alpine-310.installed", 14),
        ("osv-scalibr.installed", 15),
        ("syft-multiple-2.installed", 14),
        ("grype-match-coverage.installed", 3),
    ],
)
def test_every_record_with_name_and_version_is_a_package(
    testdata: Path, file: str, count: int
) -> None:
    data = (testdata / "pkgdb" / "apk" / file).read_bytes()
    packages = analyze_bytes(data)
    assert len(packages) == count == data.count(b"\nV:") + data.startswith(b"V:")


def test_grype_subpackage_origin(testdata: Path) -> None:
    packages = analyze_bytes(
        (testdata / "pkgdb" / "apk" / "grype-match-coverage.installed").read_bytes()
    )
    assert rows(packages) == [
        ("ko", "0.15.1", "ko", "0.15.1", "x86_64"),
        ("libvncserver", "0.9.9", "libvncserver", "0.9.9", "x86_64"),
        (
            "npm-apk-subpackage-with-false-positive",
            "7.0.0",
            "npm-apk-package-with-false-positive",
            "7.0.0",
            "x86_64",
        ),
    ]


@pytest.mark.parametrize(
    ("field", "licenses"),
    [
        (b"L:MIT BSD GPL2+", ("MIT", "BSD", "GPL2+")),
        (b"L:MIT AND BSD-3-Clause", ("MIT AND BSD-3-Clause",)),
        (b"L:(MIT OR Apache-2.0) AND Zlib", ("(MIT OR Apache-2.0) AND Zlib",)),
        (b"L:", ()),
        (b"L:caf\xe9", ("caf\ufffd",)),
    ],
)
def test_license_field(field: bytes, licenses: tuple[str, ...]) -> None:
    (package,) = analyze_bytes(b"P:foo\nV:1.0-r0\n" + field + b"\n\n")
    assert package.licenses == licenses


def test_record_without_origin_is_its_own_source() -> None:
    assert rows(analyze_bytes(b"P:foo\nV:1.0-r0\nA:aarch64\n\n")) == [
        ("foo", "1.0-r0", "foo", "1.0-r0", "aarch64")
    ]


def test_empty_database_has_no_packages() -> None:
    assert analyze_bytes(b"") == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"P:foo\nV:1.0-r0\nthis is not apk\n", "line 3: not a 'X:value' line"),
        (b"P:foo\nP:bar\nV:1.0-r0\n", "line 2: second P: in record"),
        (b"P:foo\nV:1.0 r0\n", "malformed version"),
        (b"P:fo o\nV:1.0-r0\n", "malformed package name"),
        (b"P:foo\nV:1.0-r\xff\n", "malformed version"),
    ],
)
def test_garbled_database_is_an_analyzer_error(data: bytes, message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        analyze_bytes(data)


def test_truncated_record_without_version_is_skipped() -> None:
    # A copy cut inside the last record: the complete records stay, the cut one has no V:.
    assert [p.name for p in analyze_bytes(b"P:foo\nV:1.0-r0\n\nP:bar\nA:x86")] == ["foo"]


def test_huge_field_is_read_whole() -> None:
    data = b"P:foo\nV:1.0-r0\nT:" + b"x" * (8 * 1024 * 1024) + b"\n\n"
    assert rows(analyze_bytes(data)) == [("foo", "1.0-r0", "foo", "1.0-r0", "")]
