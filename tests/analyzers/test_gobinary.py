"""Go binary analyzer: build info from ELF/PE/Mach-O executables, against trivy's parse."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.gobinary import BUILDINFO_MAGIC, GoBinaryAnalyzer, ldflags_version
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = GoBinaryAnalyzer()
PATH = "usr/local/bin/app"


def analyze_bytes(data: bytes) -> tuple[Package, ...]:
    reader = io.BytesIO(data)
    return ANALYZER.analyze(
        AnalyzerInput(path=PATH, size=len(data), reader=reader, mode=0o755)
    ).packages


def analyze_file(file: Path) -> tuple[Package, ...]:
    with file.open("rb") as reader:
        return ANALYZER.analyze(
            AnalyzerInput(path=PATH, size=file.stat().st_size, reader=reader, mode=0o755)
        ).packages


def golang(name: str, version: str, purl: str) -> Package:
    return Package(type=PackageType.GOLANG, name=name, version=version, purl=purl, path=PATH)


def trivy_expected(testdata: Path, input_file: str) -> list[tuple[str, str]]:
    """(name, version) pairs trivy's TestParse expects for one of its test binaries."""
    expected = json.loads(
        (testdata / "pkgdb" / "go" / "trivy-gobinary" / "EXPECTED.trivy.json").read_text()
    )
    case = next(c for c in expected["tests"] if c["inputFile"] == f"testdata/{input_file}")
    packages = expected[case["wantPkgs"]] if isinstance(case["wantPkgs"], str) else case["wantPkgs"]
    return sorted((p["Name"], p["Version"]) for p in packages)


# --- real binaries --------------------------------------------------------------------------


def test_elf_with_pointer_build_info_equals_trivy(testdata: Path) -> None:
    binary = testdata / "pkgdb" / "go" / "trivy-gobinary" / "test.elf"
    packages = analyze_file(binary)
    assert sorted((p.name, p.version) for p in packages) == trivy_expected(testdata, "test.elf")


def test_elf_with_pointer_build_info_whole_packages(testdata: Path) -> None:
    binary = testdata / "pkgdb" / "go" / "trivy-gobinary" / "test.elf"
    assert analyze_file(binary) == (
        golang("github.com/aquasecurity/test", "", "pkg:golang/github.com/aquasecurity/test"),
        golang("stdlib", "v1.15.2", "pkg:golang/stdlib@v1.15.2"),
        golang(
            "github.com/aquasecurity/go-pep440-version",
            "v0.0.0-20210121094942-22b2f8951d46",
            "pkg:golang/github.com/aquasecurity/go-pep440-version@v0.0.0-20210121094942-22b2f8951d46",
        ),
        golang(
            "github.com/aquasecurity/go-version",
            "v0.0.0-20210121072130-637058cfe492",
            "pkg:golang/github.com/aquasecurity/go-version@v0.0.0-20210121072130-637058cfe492",
        ),
        golang(
            "golang.org/x/xerrors",
            "v0.0.0-20200804184101-5ec99f83aff1",
            "pkg:golang/golang.org/x/xerrors@v0.0.0-20200804184101-5ec99f83aff1",
        ),
    )


def test_elf_with_inline_build_info_and_ldflags_version_equals_trivy(testdata: Path) -> None:
    binary = testdata / "pkgdb" / "go" / "trivy-gobinary" / "main-version-via-ldflags.elf"
    assert analyze_file(binary) == (
        golang(
            "github.com/aquasecurity/test",
            "v1.0.0",
            "pkg:golang/github.com/aquasecurity/test@v1.0.0",
        ),
        golang("stdlib", "v1.22.1", "pkg:golang/stdlib@v1.22.1"),
    )
    assert sorted((p.name, p.version) for p in analyze_file(binary)) == trivy_expected(
        testdata, "main-version-via-ldflags.elf"
    )


def test_truncated_real_elf_gives_no_packages(testdata: Path) -> None:
    binary = testdata / "pkgdb" / "go" / "trivy-gobinary" / "test.elf"
    assert analyze_bytes(binary.read_bytes()[:100_000]) == ()


# --- synthetic executables ------------------------------------------------------------------

SENTINEL_START = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
SENTINEL_END = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
MODINFO = (
    "path\texample.com/app\n"
    "mod\texample.com/app\t(devel)\t\n"
    "dep\tgithub.com/a/b\tv1.2.3\th1:abc=\n"
    "dep\tgithub.com/c/d\tv0.1.0\th1:def=\n"
    "=>\tgithub.com/fork/d\tv0.1.1\th1:ghi=\n"
    "build\t-ldflags=\"-s -w -X 'main.Version=2.5.0'\"\n"
)


def uvarint(value: int) -> bytes:
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def inline_blob(go_version: str = "go1.21.5", modinfo: str = MODINFO) -> bytes:
    mod = SENTINEL_START + modinfo.encode() + SENTINEL_END
    header = BUILDINFO_MAGIC + bytes([8, 2]) + bytes(16)
    return header + uvarint(len(go_version)) + go_version.encode() + uvarint(len(mod)) + mod


def elf64(data: bytes) -> bytes:
    """A minimal little-endian ELF64 with one RW PT_LOAD segment holding ``data``."""
    data_offset, address = 0x1000, 0x500000
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    program = struct.pack(
        "<IIQQQQQQ", 1, 6, data_offset, address, address, len(data), len(data), 0x1000
    )
    image = header + program
    return image + bytes(data_offset - len(image)) + data


def pe64(data: bytes) -> bytes:
    """A minimal PE32+ with one initialized read/write section holding ``data``."""
    dos = b"MZ" + bytes(58) + struct.pack("<I", 64)
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22)
    optional = struct.pack("<H22xQ", 0x20B, 0x140000000).ljust(240, b"\x00")
    raw_offset = 0x400
    section = struct.pack(
        "<8sIIII12xI", b".data", len(data), 0x1000, len(data), raw_offset, 0xC0000040
    )
    image = dos + coff + optional + section
    return image + bytes(raw_offset - len(image)) + data


def macho64(data: bytes) -> bytes:
    """A minimal little-endian Mach-O 64 with a __DATA,__go_buildinfo section holding ``data``."""
    data_offset, address = 0x1000, 0x100000000
    segment_size = 72 + 80
    header = struct.pack("<IiiIIIII", 0xFEEDFACF, 0x01000007, 3, 2, 1, segment_size, 0, 0)
    segment = struct.pack(
        "<II16sQQQQiiII",
        0x19,
        segment_size,
        b"__DATA",
        address,
        len(data),
        data_offset,
        len(data),
        3,
        3,
        1,
        0,
    )
    section = struct.pack(
        "<16s16sQQIIIIIIII",
        b"__go_buildinfo",
        b"__DATA",
        address,
        len(data),
        data_offset,
        4,
        0,
        0,
        0,
        0,
        0,
        0,
    )
    image = header + segment + section
    return image + bytes(data_offset - len(image)) + data


SYNTHETIC = (
    golang("example.com/app", "2.5.0", "pkg:golang/example.com/app@2.5.0"),
    golang("stdlib", "v1.21.5", "pkg:golang/stdlib@v1.21.5"),
    golang("github.com/a/b", "v1.2.3", "pkg:golang/github.com/a/b@v1.2.3"),
    golang("github.com/fork/d", "v0.1.1", "pkg:golang/github.com/fork/d@v0.1.1"),
)


def test_synthetic_elf_honours_replacements_and_ldflags_version() -> None:
    assert analyze_bytes(elf64(inline_blob())) == SYNTHETIC


def test_synthetic_pe_is_read() -> None:
    assert analyze_bytes(pe64(inline_blob())) == SYNTHETIC


def test_synthetic_macho_is_read() -> None:
    assert analyze_bytes(macho64(inline_blob())) == SYNTHETIC


def test_go_version_suffix_is_dropped_from_stdlib_version() -> None:
    packages = analyze_bytes(elf64(inline_blob(go_version="go1.22.3 X:boringcrypto")))
    assert packages[1] == golang("stdlib", "v1.22.3", "pkg:golang/stdlib@v1.22.3")


def test_binary_without_module_info_gives_only_stdlib() -> None:
    assert analyze_bytes(elf64(inline_blob(modinfo=""))) == (
        golang("stdlib", "v1.21.5", "pkg:golang/stdlib@v1.21.5"),
    )


def test_elf_without_build_info_gives_no_packages() -> None:
    assert analyze_bytes(elf64(b"\x00" * 4096)) == ()


def test_script_gives_no_packages() -> None:
    assert analyze_bytes(b"#!/bin/sh\necho hello\n") == ()


def test_empty_file_gives_no_packages() -> None:
    assert analyze_bytes(b"") == ()


def test_elf_with_huge_program_header_count_gives_no_packages() -> None:
    image = bytearray(elf64(inline_blob()))
    struct.pack_into("<HH", image, 0x36, 56, 0xFFFF)
    assert analyze_bytes(bytes(image)) == ()


def test_build_info_with_truncated_length_is_an_analyzer_error() -> None:
    blob = BUILDINFO_MAGIC + bytes([8, 2]) + bytes(16) + b"\x08go1.21.5" + uvarint(1 << 30)
    with pytest.raises(AnalyzerError, match="over the cap"):
        analyze_bytes(elf64(blob))


def analyze_output(data: bytes) -> AnalyzerOutput:
    reader = io.BytesIO(data)
    return ANALYZER.analyze(AnalyzerInput(path=PATH, size=len(data), reader=reader, mode=0o755))


def test_malformed_module_line_in_a_real_binary_skips_only_that_module(testdata: Path) -> None:
    data = (testdata / "pkgdb" / "go" / "trivy-gobinary" / "test.elf").read_bytes()
    # The module line loses the tabs between path, version and sum (same length, so the
    # build info's string header still fits): "dep\t<path> <version> <sum>".
    fields = b"github.com/aquasecurity/go-version\tv0.0.0-20210121072130-637058cfe492\th1:"
    assert data.count(b"dep\t" + fields) == 1
    output = analyze_output(data.replace(fields, fields.replace(b"\t", b" ")))
    assert output.packages == tuple(
        p for p in analyze_file(testdata / "pkgdb" / "go" / "trivy-gobinary" / "test.elf")
        if p.name != "github.com/aquasecurity/go-version")
    assert output.warnings == (
        f"gobinary: {PATH} build info line 4: malformed 'dep' line; entry skipped",)


def test_replacement_after_a_skipped_line_replaces_nothing() -> None:
    modinfo = "path\tx\nmod\tx\tv1.0.0\ndep\n=>\ty\tv2.0.0\n"
    output = analyze_output(elf64(inline_blob(modinfo=modinfo)))
    assert [p.name for p in output.packages] == ["x", "stdlib"]
    assert output.warnings == (
        f"gobinary: {PATH} build info line 3: malformed 'dep' line; entry skipped",
        f"gobinary: {PATH} build info line 4: '=>' without a module; entry skipped",
    )


def test_pointer_build_info_with_unmapped_pointers_gives_no_packages() -> None:
    blob = BUILDINFO_MAGIC + bytes([8, 0]) + struct.pack("<QQ", 0xDEAD0000, 0xBEEF0000)
    assert analyze_bytes(elf64(blob)) == ()



def test_18_byte_macho_is_not_a_go_binary() -> None:
    assert analyze_bytes(macho64(inline_blob())[:18]) == ()


@pytest.mark.parametrize("build", [elf64, pe64, macho64])
def test_every_truncation_of_an_executable_gives_no_packages_or_an_analyzer_error(
        build: Callable[[bytes], bytes]) -> None:
    image = build(inline_blob())
    outcomes = set()
    for length in range(len(image)):
        try:
            outcomes.add(analyze_bytes(image[:length]))
        except AnalyzerError:
            outcomes.add("AnalyzerError")
    assert outcomes <= {(), "AnalyzerError"}


# --- required() and -ldflags ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode", "wanted"),
    [
        ("usr/local/bin/app", 0o755, True),
        ("app", 0o700, True),
        ("usr/local/bin/app", 0o644, False),
        ("usr/bin/script.sh", 0o755, False),
        ("usr/lib/python3/x.py", 0o755, False),
        ("usr/share/doc/readme", 0o755, False),
    ],
)
def test_required_wants_executables_only(path: str, mode: int, wanted: bool) -> None:
    assert ANALYZER.required(path, mode) is wanted


@pytest.mark.parametrize(
    ("flags", "version"),
    [
        ("-X main.version=v1.0.0", "v1.0.0"),
        ("-X=main.version=1.0.0", "1.0.0"),
        ("-s -w -X 'github.com/x/app/cmd/app.Version=1.2.3' -X main.version=9.9.9", "1.2.3"),
        ("-X main.version=1.0.0 -X main.ver=2.0.0", ""),
        ("-X main.version=notsemver", ""),
        ("-X github.com/other/pkg.Version=3.0.0", "3.0.0"),
        ("-X 'unterminated", ""),
    ],
)
def test_ldflags_version_picks_like_trivy(flags: str, version: str) -> None:
    assert ldflags_version("github.com/x/app", (("-ldflags", flags),)) == version
