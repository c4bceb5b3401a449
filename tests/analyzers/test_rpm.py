"""RPM database analyzer: sqlite, BerkeleyDB and NDB rpmdbs, against the reference parses."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.rpm import RpmAnalyzer, split_source_rpm
from scanning.analyzers.rpmdb_header import HeaderError, parse_header
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = RpmAnalyzer()


def analyze_output(data: bytes, path: str) -> AnalyzerOutput:
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data)))


def analyze_bytes(data: bytes, path: str) -> tuple[Package, ...]:
    return analyze_output(data, path).packages


def analyze_file(file: Path, path: str) -> tuple[Package, ...]:
    with file.open("rb") as reader:
        return ANALYZER.analyze(
            AnalyzerInput(path=path, size=file.stat().st_size, reader=reader)
        ).packages


Row = tuple[str, str, str, str, str, tuple[str, ...]]


def nevra(packages: tuple[Package, ...]) -> list[Row]:
    return [
        (p.name, p.version, p.arch, p.source_name, p.source_version, p.licenses) for p in packages
    ]


def expected_nevra(records: list[dict[str, Any]]) -> list[Row]:
    """The reference parse (name/epoch/version/release/arch/sourcerpm/license) in our shape."""
    rows: list[Row] = []
    for record in records:
        if record["name"] == "gpg-pubkey":
            continue
        epoch = record.get("epoch") or 0
        prefix = f"{epoch}:" if epoch else ""
        source = split_source_rpm(record["sourcerpm"])
        assert source is not None
        source_name, source_version, source_release = source
        rows.append(
            (
                record["name"],
                f"{prefix}{record['version']}-{record['release']}",
                record["arch"],
                source_name,
                f"{prefix}{source_version}-{source_release}",
                (record["license"],),
            )
        )
    return rows


# --- real databases -------------------------------------------------------------------------


def test_sqlite_cbl_mariner_equals_reference_parse(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "rpm" / "sqlite"
    expected = json.loads((folder / "cbl-mariner-2.0_rpmdb.sqlite.packages.json").read_text())
    packages = analyze_file(folder / "cbl-mariner-2.0_rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite")
    assert len(packages) == 129
    assert nevra(packages) == expected_nevra(expected)


def test_sqlite_epoch_goes_into_version_source_version_and_purl(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "sqlite" / "cbl-mariner-2.0_rpmdb.sqlite"
    packages = analyze_file(db, "var/lib/rpm/rpmdb.sqlite")
    tools = next(p for p in packages if p.name == "ca-certificates-tools")
    assert tools == Package(
        type=PackageType.RPM,
        name="ca-certificates-tools",
        version="1:2.0.0-1.cm2",
        purl="pkg:rpm/ca-certificates-tools@2.0.0-1.cm2?arch=noarch&epoch=1",
        path="var/lib/rpm/rpmdb.sqlite",
        source_name="ca-certificates",
        source_version="1:2.0.0-1.cm2",
        arch="noarch",
        licenses=("MPLv2.0",),
    )


def test_sqlite_upstream_test_db_skips_gpg_pubkey(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "rpm" / "sqlite"
    expected = json.loads((folder / "rpm-upstream-test_rpmdb.sqlite.packages.json").read_text())
    packages = analyze_file(
        folder / "rpm-upstream-test_rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"
    )
    # The reference lists 3 headers; the third is the imported signing key gpg-pubkey.
    assert [r["name"] for r in expected] == ["foo", "hlinktest", "gpg-pubkey"]
    assert nevra(packages) == expected_nevra(expected)


def test_ndb_sle15_equals_go_rpmdb_expected_list(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "rpm" / "ndb"
    expected = json.loads((folder / "sle15-bci_Packages.db.expected.json").read_text())
    packages = analyze_file(folder / "sle15-bci_Packages.db", "var/lib/rpm/Packages.db")
    assert len(packages) == 35
    assert nevra(packages) == expected_nevra(expected["packages"])


def test_bdb_libuuid(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "bdb" / "libuuid_Packages"
    assert analyze_file(db, "var/lib/rpm/Packages") == (
        Package(
            type=PackageType.RPM,
            name="libuuid",
            version="2.32.1-42.el8_8",
            purl="pkg:rpm/libuuid@2.32.1-42.el8_8?arch=x86_64",
            path="var/lib/rpm/Packages",
            source_name="util-linux",
            source_version="2.32.1-42.el8_8",
            arch="x86_64",
            licenses=("BSD",),
        ),
    )


def test_bdb_syft_redhat_fixture(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "bdb" / "syft-redhat_Packages"
    assert nevra(analyze_file(db, "var/lib/rpm/Packages")) == [
        ("dive", "0.9.2-1", "x86_64", "dive", "0.9.2-1", ("MIT",))
    ]


def test_bdb_osv_scalibr_fixture_with_epoch(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "bdb" / "osv-scalibr_Packages_epoch"
    assert nevra(analyze_file(db, "var/lib/rpm/Packages")) == [
        ("hello", "1:0.0.1-rls", "x86_64", "hello", "1:0.0.1-rls", ("GPL",))
    ]


# --- required() -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "var/lib/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
        "var/lib/rpm/Packages.db",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/Packages",
        "usr/lib/sysimage/rpm/Packages.db",
    ],
)
def test_required_accepts_rpmdb_locations(path: str) -> None:
    assert ANALYZER.required(path, 0o644) is True


@pytest.mark.parametrize(
    "path",
    ["var/lib/rpm/Name", "var/lib/rpm/rpmdb.sqlite-wal", "opt/var/lib/rpm/Packages", "Packages"],
)
def test_required_rejects_other_files(path: str) -> None:
    assert ANALYZER.required(path, 0o644) is False


# --- header blobs built by hand ---------------------------------------------------------------


def make_header(entries: list[tuple[int, int, bytes]]) -> bytes:
    """An rpm header blob: (tag, type, value bytes) entries, strings NUL-terminated."""
    index = b""
    data = b""
    for tag, tag_type, value in entries:
        if tag_type == 4:  # int32 alignment
            data += b"\x00" * (-len(data) % 4)
        index += struct.pack(">iIiI", tag, tag_type, len(data), 1)
        data += value
    return struct.pack(">ii", len(entries), len(data)) + index + data


def string_tags(**values: str) -> list[tuple[int, int, bytes]]:
    tags = {"name": 1000, "version": 1001, "release": 1002, "arch": 1022, "sourcerpm": 1044}
    tags |= {"license": 1014}
    return [(tags[key], 6, value.encode() + b"\x00") for key, value in values.items()]


def test_header_none_source_rpm_and_license_mean_unset() -> None:
    blob = make_header(
        string_tags(name="a", version="1", release="2", arch="x86_64", sourcerpm="(none)")
        + string_tags(license="(none)")
    )
    header = parse_header(blob)
    assert (header.source_rpm, header.license, header.epoch) == ("", "", None)


def test_header_later_entry_overrides_earlier_one() -> None:
    blob = make_header(string_tags(name="old") + string_tags(name="new"))
    assert parse_header(blob).name == "new"


def test_header_epoch_zero_is_not_written_in_version() -> None:
    blob = make_header(
        [
            *string_tags(name="a", version="1", release="2", sourcerpm="a-1-2.src.rpm"),
            (1003, 4, struct.pack(">i", 0)),
        ]
    )
    db = sqlite_db([blob])
    (package,) = analyze_bytes(db, "var/lib/rpm/rpmdb.sqlite")
    assert (package.version, package.source_version) == ("1-2", "1-2")


def test_header_truncated_blob_is_an_error() -> None:
    blob = make_header(string_tags(name="a", version="1"))
    with pytest.raises(HeaderError, match="declares"):
        parse_header(blob[:-3])


def test_header_offset_outside_data_is_an_error() -> None:
    blob = bytearray(make_header(string_tags(name="a")))
    struct.pack_into(">i", blob, 8 + 8, 1_000_000)
    with pytest.raises(HeaderError, match="outside"):
        parse_header(bytes(blob))


def test_header_string_without_terminator_is_an_error() -> None:
    blob = make_header([(1000, 6, b"abc")])
    with pytest.raises(HeaderError, match="NUL"):
        parse_header(blob)


def test_header_huge_index_length_is_rejected_without_allocating() -> None:
    with pytest.raises(HeaderError, match="index length"):
        parse_header(struct.pack(">ii", 0x7FFFFFFF, 0x7FFFFFFF))


def test_split_source_rpm_rejects_names_without_release() -> None:
    assert split_source_rpm("foo.src.rpm") is None
    assert split_source_rpm("foo-1.0-1.src.rpm") == ("foo", "1.0", "1")


# --- hostile and truncated databases ------------------------------------------------------------


def sqlite_db(blobs: list[bytes]) -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    )
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data


def test_sqlite_truncated_file_is_an_analyzer_error(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "sqlite" / "cbl-mariner-2.0_rpmdb.sqlite"
    truncated = db.read_bytes()[:200_000]
    with pytest.raises(AnalyzerError, match="sqlite"):
        analyze_bytes(truncated, "var/lib/rpm/rpmdb.sqlite")


def test_sqlite_garbage_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError, match="sqlite"):
        analyze_bytes(b"not a database" * 100, "var/lib/rpm/rpmdb.sqlite")


def test_sqlite_without_packages_table_is_an_analyzer_error() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE Other (x)")
    data = connection.serialize()
    with pytest.raises(AnalyzerError, match="no Packages table"):
        analyze_bytes(data, "var/lib/rpm/rpmdb.sqlite")


def test_sqlite_recursive_view_named_packages_is_refused() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIEW Packages AS WITH RECURSIVE n(hnum) AS (SELECT 1 UNION ALL "
        "SELECT hnum + 1 FROM n) SELECT hnum, x'00' AS blob FROM n"
    )
    data = connection.serialize()
    with pytest.raises(AnalyzerError, match="no Packages table"):
        analyze_bytes(data, "var/lib/rpm/rpmdb.sqlite")


def mariner_with(testdata: Path, tmp_path: Path, statement: str) -> bytes:
    """The CBL-Mariner rpmdb with ``statement`` run on a copy (a file: the database is WAL)."""
    db = testdata / "pkgdb" / "rpm" / "sqlite" / "cbl-mariner-2.0_rpmdb.sqlite"
    copy = tmp_path / "rpmdb.sqlite"
    copy.write_bytes(db.read_bytes())
    connection = sqlite3.connect(copy)
    connection.execute(statement)
    connection.commit()
    connection.close()
    return copy.read_bytes()


def test_sqlite_bad_header_blob_skips_only_that_package(testdata: Path, tmp_path: Path) -> None:
    folder = testdata / "pkgdb" / "rpm" / "sqlite"
    whole = analyze_file(folder / "cbl-mariner-2.0_rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite")
    data = mariner_with(testdata, tmp_path, "UPDATE Packages SET blob = x'00000001' WHERE hnum = 1")
    output = analyze_output(data, "var/lib/rpm/rpmdb.sqlite")
    assert output.packages == whole[1:]
    assert output.warnings == (
        "rpm: var/lib/rpm/rpmdb.sqlite record 1: header blob of 4 bytes is shorter than its "
        "8-byte preamble; entry skipped",
    )


def test_sqlite_row_without_a_blob_is_skipped(testdata: Path, tmp_path: Path) -> None:
    data = mariner_with(testdata, tmp_path, "UPDATE Packages SET blob = 'text' WHERE hnum = 1")
    output = analyze_output(data, "var/lib/rpm/rpmdb.sqlite")
    assert len(output.packages) == 128
    assert output.warnings == (
        "rpm: var/lib/rpm/rpmdb.sqlite record 1: Packages row hnum 1 holds no blob; "
        "entry skipped",
    )

def bdb_meta(page_size: int, last_page: int) -> bytearray:
    meta = bytearray(512)
    struct.pack_into("<I", meta, 12, 0x061561)
    struct.pack_into("<IBB", meta, 20, page_size, 0, 8)
    struct.pack_into("<I", meta, 32, last_page)
    return meta


def test_bdb_garbage_page_size_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError, match="page size 12345"):
        analyze_bytes(bytes(bdb_meta(12345, 0)), "var/lib/rpm/Packages")


def test_bdb_last_page_beyond_file_is_read_as_far_as_it_goes() -> None:
    output = analyze_output(bytes(bdb_meta(512, 4_000_000_000)), "var/lib/rpm/Packages")
    assert output.packages == ()
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages metadata: names last page 4000000000 but the file has 1 "
        "pages: truncated, pages 1 to 4000000000 not read",
    )

def test_bdb_overflow_chain_loop_skips_that_value() -> None:
    page_size = 512
    meta = bdb_meta(page_size, 2)
    hash_page = bytearray(page_size)
    struct.pack_into("<HHBB", hash_page, 20, 2, 0, 0, 13)  # 2 items, hash page
    struct.pack_into("<HH", hash_page, 26, 100, 200)  # key at 100, value at 200
    struct.pack_into("<B3xII", hash_page, 200, 3, 2, 1000)  # H_OFFPAGE -> page 2
    overflow = bytearray(page_size)
    struct.pack_into("<IIIHHBB", overflow, 8, 2, 0, 2, 0, 10, 0, 7)  # next page = itself
    data = bytes(meta) + bytes(hash_page) + bytes(overflow)
    output = analyze_output(data, "var/lib/rpm/Packages")
    assert output.packages == ()
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages record 1: overflow page 2 is read twice (a loop or a shared "
        "page); entry skipped",
    )


def test_bdb_truncated_file_says_which_pages_were_not_read(testdata: Path) -> None:
    db = testdata / "pkgdb" / "rpm" / "bdb" / "libuuid_Packages"
    output = analyze_output(db.read_bytes()[:40_000], "var/lib/rpm/Packages")
    assert output.packages == ()
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages metadata: names last page 22 but the file has 9 pages: "
        "truncated, pages 9 to 22 not read",
        "rpm: var/lib/rpm/Packages record 1: overflow page 9 is beyond the end of the file; "
        "entry skipped",
    )

def test_ndb_huge_slot_page_count_is_an_analyzer_error() -> None:
    header = b"RpmP" + struct.pack("<III", 0, 1, 0xFFFFFFF) + bytes(16)
    with pytest.raises(AnalyzerError, match="slot page count"):
        analyze_bytes(header, "var/lib/rpm/Packages.db")


def sle15(testdata: Path) -> bytes:
    return (testdata / "pkgdb" / "rpm" / "ndb" / "sle15-bci_Packages.db").read_bytes()


def test_ndb_truncated_file_keeps_the_blobs_before_the_cut(testdata: Path) -> None:
    data = sle15(testdata)
    whole = analyze_bytes(data, "var/lib/rpm/Packages.db")
    output = analyze_output(data[:300_000], "var/lib/rpm/Packages.db")
    assert output.packages == whole[:9]
    assert len(output.warnings) == 21
    assert output.warnings[:2] == (
        "rpm: var/lib/rpm/Packages.db record 10: NDB blob of package 10 is truncated; "
        "entry skipped",
        "rpm: var/lib/rpm/Packages.db record 11: NDB blob of package 11 is beyond the end of "
        "the file; entry skipped",
    )
    assert output.warnings[-1] == "rpm: var/lib/rpm/Packages.db: 6 more skipped or unread parts"


def test_ndb_blob_with_bad_magic_skips_only_that_package(testdata: Path) -> None:
    data = sle15(testdata)
    whole = analyze_bytes(data, "var/lib/rpm/Packages.db")
    first_blob = data.index(b"BlbS")
    broken = data[:first_blob] + b"XXXX" + data[first_blob + 4 :]
    output = analyze_output(broken, "var/lib/rpm/Packages.db")
    assert output.packages == whole[1:]
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages.db record 1: bad NDB blob magic 0x58585858 for package 1; "
        "entry skipped",
    )


def test_ndb_packages_past_the_cap_are_not_read_and_say_so(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_DB_RECORDS", "3")
    data = sle15(testdata)
    output = analyze_output(data, "var/lib/rpm/Packages.db")
    assert output.packages == analyze_bytes(data, "var/lib/rpm/Packages.db")[:3]
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages.db: more than 3 records (MAX_DB_RECORDS); the rest was not read",
    )

def test_empty_file_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        analyze_bytes(b"", "var/lib/rpm/Packages")


def test_ndb_slots_sharing_one_blob_stop_the_walk_after_the_first() -> None:
    blob = make_header(string_tags(name="a", version="1", release="1")).ljust(4500, b"\x00")
    header = b"RpmP" + struct.pack("<III", 0, 1, 1) + bytes(16)
    slot = b"Slot" + struct.pack("<III", 1, 4096 // 16, 1)
    slots = (slot + slot).ljust(4096 - 32, b"\x00")
    slots = b"".join(
        slots[i : i + 16] if i < 32 else b"Slot" + bytes(12) for i in range(0, len(slots), 16)
    )
    blob_record = b"BlbS" + struct.pack("<III", 1, 0, len(blob)) + blob
    output = analyze_output(header + slots + blob_record, "var/lib/rpm/Packages.db")
    assert [p.name for p in output.packages] == ["a"]
    assert output.warnings == (
        "rpm: var/lib/rpm/Packages.db after record 1: NDB blobs add up to more than the file: "
        "overlapping slots; the rest of the database was not read",
    )
