"""dpkg analyzer: status files and distroless status.d entries, against the reference parses."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.dpkg import DpkgAnalyzer
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = DpkgAnalyzer()
STATUS = "var/lib/dpkg/status"

Row = tuple[str, str, str, str, str]


def analyze_output(data: bytes, path: str = STATUS) -> AnalyzerOutput:
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data)))


def analyze_bytes(data: bytes, path: str = STATUS) -> tuple[Package, ...]:
    return analyze_output(data, path).packages


def analyze_file(file: Path, path: str = STATUS) -> tuple[Package, ...]:
    return analyze_bytes(file.read_bytes(), path)


def rows(packages: tuple[Package, ...]) -> list[Row]:
    """(name, version, source name, source version, arch), the fields the references have."""
    return sorted((p.name, p.version, p.source_name, p.source_version, p.arch) for p in packages)


def trivy_version(epoch: int, version: str, release: str) -> str:
    text = f"{epoch}:{version}" if epoch else version
    return f"{text}-{release}" if release else text


def trivy_row(package: dict[str, Any]) -> Row:
    return (
        package["Name"],
        package["ID"].split("@", 1)[1],
        package["SrcName"],
        trivy_version(
            package.get("SrcEpoch", 0), package["SrcVersion"], package.get("SrcRelease", "")
        ),
        package["Arch"],
    )


def test_ubuntu_status_equals_trivy_parse(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "dpkg"
    expected = json.loads((folder / "trivy_ubuntu-18.04_status.EXPECTED.trivy.json").read_text())
    (info,) = expected["want"]["PackageInfos"]
    assert info["FilePath"] == STATUS
    want = sorted(trivy_row(package) for package in info["Packages"])

    assert rows(analyze_file(folder / "trivy_ubuntu-18.04_status")) == want
    assert len(want) == 90


def test_package_carries_purl_path_and_no_layer(testdata: Path) -> None:
    packages = analyze_file(testdata / "pkgdb" / "dpkg" / "trivy_ubuntu-18.04_status")
    bsdutils = next(p for p in packages if p.name == "bsdutils")
    assert bsdutils == Package(
        type=PackageType.DPKG,
        name="bsdutils",
        version="1:2.31.1-0.4ubuntu3.1",
        purl="pkg:deb/bsdutils@1:2.31.1-0.4ubuntu3.1?arch=amd64",
        path=STATUS,
        source_name="util-linux",
        # "Source: util-linux (2.31.1-0.4ubuntu3.1)": the source version has no epoch.
        source_version="2.31.1-0.4ubuntu3.1",
        arch="amd64",
    )


def test_source_with_version_in_parentheses(testdata: Path) -> None:
    packages = analyze_file(testdata / "pkgdb" / "dpkg" / "claircore_postgresql.status")
    assert rows(packages) == [
        ("postgresql-client", "11+200+deb10u5", "postgresql-common", "200+deb10u5", "all"),
        ("postgresql-client-11", "11.22-0+deb10u2", "postgresql-11", "11.22-0+deb10u2", "amd64"),
        (
            "postgresql-client-common",
            "200+deb10u5",
            "postgresql-common",
            "200+deb10u5",
            "all",
        ),
    ]


def test_osv_scalibr_status(testdata: Path) -> None:
    packages = analyze_file(testdata / "pkgdb" / "dpkg" / "osv-scalibr_valid_status")
    assert rows(packages) == [
        ("accountsservice", "22.08.8-6", "accountsservice", "22.08.8-6", "amd64"),
        ("acl", "2.3.1-3", "acl", "2.3.1-3", "amd64"),
        ("adduser", "3.131", "adduser", "3.131", "all"),
        (
            "admin-session",
            "2023.06.26.c543406313-00",
            "admin-session",
            "2023.06.26.c543406313-00",
            "amd64",
        ),
        ("attr", "1:2.5.1-4", "attr", "1:2.5.1-4", "amd64"),
        ("libacl1", "2.3.1-3", "acl", "2.3.1-3", "amd64"),
        ("util-linux-extra", "2.38.1-5+b1", "util-linux", "2.38.1-5", "amd64"),
    ]


def test_texlive_status_counts_every_installed_stanza(testdata: Path) -> None:
    file = testdata / "pkgdb" / "dpkg" / "claircore_ubuntu-18.04-texlive.status"
    installed = file.read_text().count("Status: install ok installed")
    packages = analyze_file(file)
    assert (len(packages), installed) == (357, 357)


def test_vcpkg_feature_stanzas_without_version_are_skipped(testdata: Path) -> None:
    packages = analyze_file(testdata / "pkgdb" / "dpkg" / "claircore_vcpkg.status")
    assert [(p.name, p.version) for p in packages] == [
        ("libffi", "3.3"),
        ("zlib", "1.2.11-6"),
        ("curl", "7.68.0-1"),
        ("bzip2", "1.0.6-5"),
        ("liblzma", "5.2.4-4"),
        ("libiconv", "1.16-1"),
        ("libxml2", "2.9.9-5"),
        ("xxhash", "0.7.0"),
        ("lz4", "1.9.2"),
        ("lzo", "2.10-4"),
        ("openssl-windows", "1.1.1d-1"),
        ("openssl", "1.1.1d"),
        ("libarchive", "3.4.1"),
        ("libressl", "2.9.1-2"),
        ("libffi", "3.3"),
    ]


def test_distroless_status_d_entry_has_no_status_and_counts(testdata: Path) -> None:
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-distroless" / "libsqlite3-0"
    packages = analyze_file(file, "var/lib/dpkg/status.d/libsqlite3-0")
    assert packages == (
        Package(
            type=PackageType.DPKG,
            name="libsqlite3-0",
            version="3.34.1-3",
            purl="pkg:deb/libsqlite3-0@3.34.1-3?arch=arm64",
            path="var/lib/dpkg/status.d/libsqlite3-0",
            source_name="sqlite3",
            source_version="3.34.1-3",
            arch="arm64",
        ),
    )


def libsqlite3(testdata: Path) -> bytes:
    folder = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-distroless"
    return (folder / "libsqlite3-0").read_bytes()


def test_status_d_entry_with_malformed_version_is_skipped_with_a_warning(testdata: Path) -> None:
    data = libsqlite3(testdata).replace(b"Version: 3.34.1-3\n", b"Version: 3.34.1 3\n")
    output = analyze_output(data, "var/lib/dpkg/status.d/libsqlite3-0")
    assert output.packages == ()
    assert output.warnings == (
        "dpkg: var/lib/dpkg/status.d/libsqlite3-0 line 3: package libsqlite3-0: malformed "
        "Version '3.34.1 3'; entry skipped",
    )


def test_status_d_entry_cut_short_is_skipped_with_a_warning(testdata: Path) -> None:
    data = libsqlite3(testdata)
    output = analyze_output(data[:-1], "var/lib/dpkg/status.d/libsqlite3-0")
    last_line = data.count(b"\n")
    assert output.packages == ()
    assert output.warnings == (
        f"dpkg: var/lib/dpkg/status.d/libsqlite3-0 line {last_line}: the file ends "
        "inside this line (truncated); entry skipped",
    )


def test_status_d_stanza_with_deinstall_status_is_skipped(testdata: Path) -> None:
    # osv-scalibr's sample: "foo" has no Status (installed), "bar" is deinstall/config-files.
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "osv-scalibr" / "foo"
    packages = analyze_file(file, "var/lib/dpkg/status.d/foo")
    assert rows(packages) == [("foo", "1.2.3", "foo", "1.2.3", "amd64")]


def test_syft_deinstall_sample_keeps_only_the_installed_kernel(testdata: Path) -> None:
    # Syft's expectation for this sample: the config-files kernel yields no package.
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-samples" / "deinstall"
    packages = analyze_file(file, "var/lib/dpkg/status.d/deinstall")
    assert rows(packages) == [
        (
            "linux-image-6.14.0-1012-aws",
            "6.14.0-1012.12~24.04.1",
            "linux-signed-aws-6.14",
            "6.14.0-1012.12~24.04.1",
            "amd64",
        )
    ]


def test_syft_multiple_sample_skips_stanzas_without_name_or_version(testdata: Path) -> None:
    # Deliberate difference: Syft reports "no-version" with an empty version; we cannot match
    # a package without a version, so it is skipped (as Trivy does), but with a warning.
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-samples" / "multiple"
    output = analyze_output(file.read_bytes(), "var/lib/dpkg/status.d/multiple")
    assert rows(output.packages) == [
        ("tzdata", "2020a-0+deb10u1", "tzdata-dev", "2020a-0+deb10u1", "all"),
        ("util-linux", "2.33.1-0.1", "util-linux", "2.33.1-0.1", "amd64"),
    ]
    assert output.warnings == (
        "dpkg: var/lib/dpkg/status.d/multiple line 3: package no-version is installed but has "
        "no Version; entry skipped",
    )


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("single", [("apt", "1.8.2", "apt-dev", "1.8.2", "amd64")]),
        ("installed-size-4KB", [("apt", "1.8.2", "apt-dev", "1.8.2", "amd64")]),
        (
            "libpam-runtime",
            [("libpam-runtime", "1.5.2-6+deb12u1", "pam", "1.5.2-6+deb12u1", "all")],
        ),
        (
            "doc-examples",
            [
                ("made-up-package-1", "1.0.0", "glibc", "1.0.0", ""),
                ("made-up-package-2", "2.0.0", "made-up-package-2", "2.0.0", ""),
                ("made-up-package-3", "3.0.0", "made-up-package-3", "3.0.0", ""),
                ("made-up-package-4", "3.0.0", "made-up-package-4", "3.0.0", ""),
                ("mutt", "1.3.17-1", "mutt", "1.3.17-1", ""),
            ],
        ),
    ],
)
def test_syft_status_d_samples(testdata: Path, sample: str, expected: list[Row]) -> None:
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-samples" / sample
    assert rows(analyze_file(file, f"var/lib/dpkg/status.d/{sample}")) == expected


def test_coreutils_sample_source_version_differs_from_binary(testdata: Path) -> None:
    file = testdata / "pkgdb" / "dpkg" / "status.d" / "syft-samples" / "coreutils-relationships"
    packages = analyze_file(file, "var/lib/dpkg/status.d/coreutils")
    libselinux = next(p for p in packages if p.name == "libselinux1")
    assert (libselinux.version, libselinux.source_name, libselinux.source_version) == (
        "3.4-1+b6",
        "libselinux",
        "3.4-1",
    )


STANZA = b"Package: foo\nStatus: %s\nArchitecture: amd64\nVersion: 1.0-1\n\n"


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        (b"install ok installed", True),
        (b"hold ok installed", True),
        (b"install reinstreq half-installed", True),
        (b"install ok unpacked", True),
        (b"install ok half-configured", True),
        (b"install ok triggers-awaited", True),
        (b"install ok triggers-pending", True),
        # Deliberate difference: Trivy and Syft skip "deinstall"; the files are still on disk.
        (b"deinstall ok installed", True),
        # Deliberate difference: Trivy keeps these; only conffiles (or nothing) are left.
        (b"install ok config-files", False),
        (b"install ok not-installed", False),
        (b"deinstall ok config-files", False),
        (b"purge ok not-installed", False),
    ],
)
def test_status_word_decides_whether_files_are_on_disk(status: bytes, counted: bool) -> None:
    assert len(analyze_bytes(STANZA % status)) == (1 if counted else 0)


def test_stanza_without_status_in_status_file_is_not_installed() -> None:
    assert analyze_bytes(b"Package: foo\nVersion: 1.0\n\n") == ()


def test_empty_status_file_has_no_packages() -> None:
    assert analyze_bytes(b"") == ()


def ubuntu_status(testdata: Path) -> bytes:
    return (testdata / "pkgdb" / "dpkg" / "trivy_ubuntu-18.04_status").read_bytes()


def ubuntu_names_without(testdata: Path, name: str) -> list[str]:
    names = sorted(p.name for p in analyze_bytes(ubuntu_status(testdata)))
    names.remove(name)
    return names


def test_ubuntu_status_has_no_warnings(testdata: Path) -> None:
    assert analyze_output(ubuntu_status(testdata)).warnings == ()


@pytest.mark.parametrize(
    ("corrupt", "warning"),
    [
        ((b"Version: 4.4.18-2ubuntu1\n", b"Version: 4.4.18 2ubuntu1\n"),
         "line 502: package bash: malformed Version '4.4.18 2ubuntu1'"),
        ((b"Package: bash\n", b"Package: bash\ngarbage line\n"),
         "line 494: not a 'Field: value' line"),
        ((b"Version: 4.4.18-2ubuntu1\n", b"Version: 4.4.18-2ubuntu1\nversion: 2\n"),
         "line 503: duplicate field 'version'"),
        ((b"Package: bash\nEssential: yes\nStatus: install ok installed\n",
          b"Package: bash\nEssential: yes\nStatus: install ok bogus\n"),
         "line 495: malformed Status 'install ok bogus'"),
        ((b"Package: bash\n", b"Package: ba sh\n"), "line 493: malformed Package 'ba sh'"),
        ((b"Version: 4.4.18-2ubuntu1\n", b"Version: 4.4.18-2ubuntu1\nSource: a (b c)\n"),
         "line 503: package bash: malformed Source 'a (b c)'"),
        ((b"Version: 4.4.18-2ubuntu1\n", b"Version: 4.4.18-2ubuntu\xff\n"),
         "line 502: package bash: malformed Version '4.4.18-2ubuntu\\udcff'"),
    ],
)
def test_malformed_stanza_is_skipped_with_a_warning_naming_its_line(
    testdata: Path, corrupt: tuple[bytes, bytes], warning: str
) -> None:
    data = ubuntu_status(testdata)
    assert data.count(corrupt[0]) == 1
    output = analyze_output(data.replace(*corrupt))
    assert sorted(p.name for p in output.packages) == ubuntu_names_without(testdata, "bash")
    assert output.warnings == (f"dpkg: var/lib/dpkg/status {warning}; entry skipped",)


def test_file_cut_inside_its_last_line_skips_the_last_stanza(testdata: Path) -> None:
    data = ubuntu_status(testdata)
    # A copy that ends inside bash's last line (the newline after it is missing).
    end = data.index(b"\n\n", data.index(b"Package: bash\n"))
    whole, cut = analyze_output(data[: end + 1]), analyze_output(data[:end])
    assert "bash" in {p.name for p in whole.packages}
    assert cut.packages == tuple(p for p in whole.packages if p.name != "bash")
    last_line = data[:end].count(b"\n") + 1
    assert cut.warnings == (
        f"dpkg: var/lib/dpkg/status line {last_line}: the file ends inside "
        "this line (truncated); entry skipped",
    )


def test_last_stanza_ending_with_its_newline_is_whole(testdata: Path) -> None:
    data = ubuntu_status(testdata)
    assert analyze_output(data.rstrip(b"\n") + b"\n") == analyze_output(data)


def test_continuation_line_without_field_is_skipped_with_a_warning() -> None:
    data = b" continuation first\nPackage: bar\n\n" + STANZA % b"install ok installed"
    output = analyze_output(data)
    assert rows(output.packages) == [("foo", "1.0-1", "foo", "1.0-1", "amd64")]
    assert output.warnings == (
        "dpkg: var/lib/dpkg/status line 1: continuation line without field; entry skipped",
    )


def test_continuation_of_a_single_line_field_skips_the_stanza() -> None:
    data = b"Package: foo\nStatus: install ok installed\nVersion: 1.0\n 2.0\n\n"
    output = analyze_output(data)
    assert output.packages == ()
    assert output.warnings == (
        "dpkg: var/lib/dpkg/status line 4: continuation line in the single-line field "
        "'version'; entry skipped",
    )


def test_stanzas_past_the_cap_are_not_read_and_say_so(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_DB_RECORDS", "2")
    output = analyze_output(ubuntu_status(testdata))
    assert [p.name for p in output.packages] == ["fdisk", "libpam-runtime"]
    assert output.warnings == (
        "dpkg: var/lib/dpkg/status: more than 2 records (MAX_DB_RECORDS); the rest was not read",
    )


def test_non_utf8_bytes_in_free_text_do_no_harm() -> None:
    data = (
        b"Package: foo\nStatus: install ok installed\nMaintainer: J\xf6rg \xff\n"
        b"Version: 1.0\nDescription: caf\xe9\n bad \x80 bytes\n\n"
    )
    assert rows(analyze_bytes(data)) == [("foo", "1.0", "foo", "1.0", "")]


def test_huge_field_is_read_whole() -> None:
    description = b"Description: x\n" + b" " + b"y" * (8 * 1024 * 1024) + b"\n"
    data = b"Package: foo\nStatus: install ok installed\nVersion: 1.0\n" + description + b"\n"
    assert rows(analyze_bytes(data)) == [("foo", "1.0", "foo", "1.0", "")]


def test_file_over_the_cap_is_an_error() -> None:
    data = b"x" * 16
    oversized = AnalyzerInput(path=STATUS, size=ANALYZER.max_file_size + 1, reader=io.BytesIO(data))
    with pytest.raises(AnalyzerError, match="over the"):
        ANALYZER.analyze(oversized)


def test_crlf_line_endings_are_accepted() -> None:
    data = b"Package: foo\r\nStatus: install ok installed\r\nVersion: 1.0\r\n\r\n"
    assert rows(analyze_bytes(data)) == [("foo", "1.0", "foo", "1.0", "")]
