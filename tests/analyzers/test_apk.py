"""apk analyzer: lib/apk/db/installed, against Trivy's parse of Alpine 3.11.5."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanning.analyzers.apk import ApkAnalyzer
from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.model import Package, PackageType

ANALYZER = ApkAnalyzer()
DB = "lib/apk/db/installed"

Row = tuple[str, str, str, str, str]


def analyze_output(data: bytes) -> AnalyzerOutput:
    return ANALYZER.analyze(AnalyzerInput(path=DB, size=len(data), reader=io.BytesIO(data)))


def analyze_bytes(data: bytes) -> tuple[Package, ...]:
    return analyze_output(data).packages


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
    # Trivy's analyzer fixture: 16 P: lines, one ("invalidPackageWithoutAVersion") has no V:;
    # the file ends inside the last record's file list (a Z: line without newline).
    data = (testdata / "pkgdb" / "apk" / "trivy-analyzer-apk.installed").read_bytes()
    assert not data.endswith(b"\n")
    output = analyze_output(data)
    names = [p.name for p in output.packages]
    assert len(names) == 15
    assert "invalidPackageWithoutAVersion" not in names
    line = data[: data.index(b"P:invalidPackageWithoutAVersion")].count(b"\n") + 1
    assert output.warnings == (
        f"apk: lib/apk/db/installed line {line}: record without P: or V:; entry skipped",
    )


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


def alpine_311(testdata: Path) -> bytes:
    return (testdata / "pkgdb" / "apk" / "trivy-image-alpine-311.installed").read_bytes()


def test_alpine_311_has_no_warnings(testdata: Path) -> None:
    assert analyze_output(alpine_311(testdata)).warnings == ()


def test_malformed_version_skips_only_that_record(testdata: Path) -> None:
    # busybox and ssl_client share this version; count=1 breaks busybox's only.
    data = alpine_311(testdata).replace(b"\nV:1.31.1-r9\n", b"\nV:1.31.1 r9\n", 1)
    output = analyze_output(data)
    names = [p.name for p in analyze_bytes(alpine_311(testdata))]
    names.remove("busybox")
    assert sorted(p.name for p in output.packages) == sorted(names)
    assert len(output.packages) == 13
    assert output.warnings == (
        "apk: lib/apk/db/installed line 25: package busybox: malformed version '1.31.1 r9'; "
        "entry skipped",
    )


@pytest.mark.parametrize(
    ("corrupt", "warning"),
    [
        ((b"\nV:1.31.1-r9\n", b"\nV:1.31.1-r9\nthis is not apk\n"),
         "line 26: not a 'X:value' line"),
        ((b"\nP:busybox\n", b"\nP:busybox\nP:busybox2\n"), "line 25: second P: in record"),
        ((b"\nP:busybox\n", b"\nP:busy box\n"), "line 24: malformed package name 'busy box'"),
        ((b"\nV:1.31.1-r9\n", b"\nV:1.31.1-r\xff\n"),
         "line 25: package busybox: malformed version '1.31.1-r\\udcff'"),
        ((b"\nV:1.31.1-r9\n", b"\n"), "line 23: record without P: or V:"),
    ],
)
def test_malformed_record_is_skipped_with_a_warning_naming_its_line(
    testdata: Path, corrupt: tuple[bytes, bytes], warning: str
) -> None:
    data = alpine_311(testdata).replace(*corrupt, 1)
    output = analyze_output(data)
    assert len(output.packages) == 13
    assert "busybox" not in {p.name for p in output.packages}
    assert output.warnings == (f"apk: lib/apk/db/installed {warning}; entry skipped",)


def test_record_cut_inside_a_field_we_read_is_skipped(testdata: Path) -> None:
    data = alpine_311(testdata)
    # The copy ends inside busybox's V: line ("V:1.31"): its version may be cut short.
    cut = data[: data.index(b"\nV:1.31.1-r9\n") + len(b"\nV:1.31")]
    output = analyze_output(cut)
    assert [p.name for p in output.packages] == ["musl"]
    assert output.warnings == (
        "apk: lib/apk/db/installed line 25: the file ends inside this V: line (truncated); "
        "entry skipped",
    )


def test_record_cut_inside_its_file_list_is_kept(testdata: Path) -> None:
    data = alpine_311(testdata)
    # Cut in busybox's file list (after every field we read): nothing we report was lost.
    cut = data[: data.index(b"\nR:busybox\n") + len(b"\nR:busy")]
    output = analyze_output(cut)
    assert rows(output.packages) == [
        ("busybox", "1.31.1-r9", "busybox", "1.31.1-r9", "x86_64"),
        ("musl", "1.1.24-r2", "musl", "1.1.24-r2", "x86_64"),
    ]
    assert output.warnings == ()


def test_record_without_closing_blank_line_is_kept(testdata: Path) -> None:
    data = alpine_311(testdata)
    assert data.endswith(b"\n\n")
    assert analyze_output(data[:-1]) == analyze_output(data)


def test_records_past_the_cap_are_not_read_and_say_so(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_DB_RECORDS", "2")
    output = analyze_output(alpine_311(testdata))
    assert [p.name for p in output.packages] == ["musl", "busybox"]
    assert output.warnings == (
        "apk: lib/apk/db/installed: more than 2 records (MAX_DB_RECORDS); the rest was not read",
    )


def test_a_database_exactly_at_the_cap_is_complete(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_DB_RECORDS", "14")
    output = analyze_output(alpine_311(testdata))
    assert (len(output.packages), output.warnings) == (14, ())


def test_warnings_are_bounded_in_number() -> None:
    data = b"".join(b"P:p%d\nV:bad version\n\n" % index for index in range(25))
    output = analyze_output(data)
    assert output.packages == ()
    assert len(output.warnings) == 21
    assert output.warnings[0] == (
        "apk: lib/apk/db/installed line 2: package p0: malformed version 'bad version'; "
        "entry skipped"
    )
    assert output.warnings[-1] == "apk: lib/apk/db/installed: 5 more skipped or unread parts"


def test_truncated_record_without_version_is_skipped_with_a_warning() -> None:
    # A copy cut inside the last record: the complete records stay, the cut one has no V:.
    output = analyze_output(b"P:foo\nV:1.0-r0\n\nP:bar\nA:x86\n")
    assert [p.name for p in output.packages] == ["foo"]
    assert output.warnings == (
        "apk: lib/apk/db/installed line 4: record without P: or V:; entry skipped",
    )


def test_huge_field_is_read_whole() -> None:
    data = b"P:foo\nV:1.0-r0\nT:" + b"x" * (8 * 1024 * 1024) + b"\n\n"
    assert rows(analyze_bytes(data)) == [("foo", "1.0-r0", "foo", "1.0-r0", "")]
