"""Compiling, writing and loading the advisory index."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from scanning.advisories.index import compile_index, load_index, write_index
from scanning.advisories.osv import iter_records
from scanning.errors import AdvisoryError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "advisories" / "osv"
FIXTURE_RECORDS = Path(__file__).resolve().parents[1] / "matching" / "fixtures" / "osv"
BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)


def _record(advisory_id: str, modified: str, fixed: str, **extra: object) -> dict[str, object]:
    return {
        "id": advisory_id,
        "modified": modified,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Some_Package"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
        **extra,
    }


def test_counts_records_per_ecosystem_and_drops_withdrawn() -> None:
    index = compile_index(iter_records(FIXTURE_RECORDS), built=BUILT)
    assert (index.built, index.counts) == (
        "2024-10-10T12:00:00Z",
        {
            "AlmaLinux": 1,
            "Debian": 6,
            "Go": 2,
            "Maven": 1,
            "PyPI": 1,
            "Rocky Linux": 1,
            "Ubuntu": 2,
            "npm": 1,
        },
    )


def test_keys_by_ecosystem_and_normalised_name() -> None:
    index = compile_index([_record("X-1", "2024-01-01T00:00:00Z", "1.0")], built=BUILT)
    assert (index.ecosystems(), [e[0] for e in index.lookup("PyPI", "some.package")]) == (
        ("PyPI",),
        ["X-1"],
    )


def test_keeps_aliases_upstream_and_related() -> None:
    record = _record(
        "X-1",
        "2024-01-01T00:00:00Z",
        "1.0",
        aliases=["CVE-2024-1"],
        upstream=["CVE-2024-2"],
        related=["GHSA-x"],
    )
    metadata = compile_index([record], built=BUILT).advisory("X-1")
    assert (metadata["aliases"], metadata["upstream"], metadata["related"]) == (
        ["CVE-2024-1"],
        ["CVE-2024-2"],
        ["GHSA-x"],
    )


def test_latest_modified_record_wins_for_a_duplicate_id() -> None:
    index = compile_index(
        [
            _record("X-1", "2024-02-01T00:00:00Z", "2.0"),
            _record("X-1", "2024-01-01T00:00:00Z", "1.0"),
        ],
        built=BUILT,
    )
    [(_, entry)] = index.lookup("PyPI", "some-package")
    assert entry["ranges"]["ranges"][0]["events"] == [["introduced", "0"], ["fixed", "2.0"]]


def test_ecosystem_filter_keeps_only_the_listed_ones() -> None:
    index = compile_index(iter_records(FIXTURE_RECORDS), ecosystems=["Go"], built=BUILT)
    assert index.counts == {"Go": 2}


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    index = compile_index(iter_records(FIXTURE_RECORDS), sources=["fixtures"], built=BUILT)
    write_index(index, tmp_path / "index.idx")
    assert load_index(tmp_path / "index.idx").to_json() == index.to_json()


def test_a_file_that_is_not_an_index_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.idx"
    other.write_bytes(zstandard.ZstdCompressor().compress(b'{"format": "something-else"}'))
    with pytest.raises(AdvisoryError, match="not an acr-scan-advisory-index version 1 file"):
        load_index(other)


def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.idx"
    corrupt.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(AdvisoryError, match="not a compressed advisory index"):
        load_index(corrupt)


def test_compiles_the_pypa_and_go_databases() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared advisories not found at {SHARED}")
    records = [
        *iter_records(SHARED / "pypi-pypa-advisory-database"),
        *iter_records(SHARED / "go-vulndb"),
    ]
    index = compile_index(records, built=BUILT)
    assert (len(records), index.counts) == (6952, {"Go": 4274, "PyPI": 2649})


PYPA = SHARED / "pypi-pypa-advisory-database"


def test_a_list_where_a_version_belongs_is_rejected_naming_the_field() -> None:
    record = _record("X-1", "2024-01-01T00:00:00Z", "1.0")
    record["affected"][0]["ranges"][0]["events"][1]["fixed"] = ["a", "b"]  # type: ignore[index]
    index = compile_index([record], built=BUILT)
    assert (index.rejected, index.lookup("PyPI", "some-package"), index.counts) == (
        [{"id": "X-1", "modified": "2024-01-01T00:00:00Z",
          "reason": "affected[0].ranges[0].events[1].fixed: expected a string, got a list",
          "keys": [["PyPI", "some-package"]]}],
        [],
        {},
    )


@pytest.mark.parametrize(
    ("path", "rejected"),
    [
        ("steam/PYSEC-2019-125.yaml", {
            "id": "PYSEC-2019-125", "modified": "2020-01-16T13:15:00Z",
            "reason": "affected[0].ranges[0].events[1].fixed: not a PEP 440 version: "
                      "'2019-09-12'",
            "keys": [["PyPI", "steam"]]}),
        ("binderhub/PYSEC-2021-371.yaml", {
            "id": "PYSEC-2021-371", "modified": "2021-09-01T12:23:00Z",
            "reason": "affected[0].ranges[1].events[1].fixed: not a PEP 440 version: "
                      "'0.2.0-n653'",
            "keys": [["PyPI", "binderhub"]]}),
    ],
)
def test_real_pypa_record_with_a_version_pep_440_refuses_is_rejected(
    path: str, rejected: dict[str, object]
) -> None:
    if not PYPA.is_dir():
        pytest.skip(f"shared advisories not found at {PYPA}")
    index = compile_index(iter_records(PYPA / path), built=BUILT)
    assert (index.rejected, index.advisories) == ([rejected], {})


def test_a_range_that_does_not_compile_falls_back_to_the_versions_list() -> None:
    record = _record("X-1", "2024-01-01T00:00:00Z", "2019-09-12")
    record["affected"][0]["versions"] = ["1.0", "1.1"]  # type: ignore[index]
    index = compile_index([record], built=BUILT)
    [(_, entry)] = index.lookup("PyPI", "some-package")
    assert (index.rejected, entry["ranges"]["ranges"], entry["ranges"]["versions"],
            entry["ranges"]["skipped_ranges"]) == (
        [],
        [],
        ["1.0", "1.1"],
        ["affected[0].ranges[0].events[1].fixed: not a PEP 440 version: '2019-09-12'"],
    )


def test_a_versions_list_holding_a_number_is_rejected() -> None:
    record = _record("X-1", "2024-01-01T00:00:00Z", "1.0")
    record["affected"][0]["versions"] = ["0.9", 1]  # type: ignore[index]
    index = compile_index([record], built=BUILT)
    assert [r["reason"] for r in index.rejected] == [
        "affected[0].versions[1]: expected a string, got a number"
    ]


def test_affected_that_is_not_a_list_is_rejected_under_an_unknown_ecosystem() -> None:
    record = _record("X-1", "2024-01-01T00:00:00Z", "1.0")
    record["affected"] = {"package": "x"}
    index = compile_index([record], built=BUILT)
    assert (index.rejected, index.rejected_counts()) == (
        [{"id": "X-1", "modified": "2024-01-01T00:00:00Z",
          "reason": "affected: expected a list, got an object", "keys": []}],
        {"(unknown)": 1},
    )


def test_every_problem_is_counted_in_the_one_line_reason() -> None:
    record = _record("X-1", "2024-01-01T00:00:00Z", "1.0")
    record["affected"] = [1, "two", record["affected"][0]]  # type: ignore[index]
    index = compile_index([record], built=BUILT)
    assert ([r["reason"] for r in index.rejected], index.counts) == (
        ["affected[0]: expected an object, got a number (and 1 more)"],
        {"PyPI": 1},
    )


def test_rejected_records_and_their_keys_survive_a_round_trip(tmp_path: Path) -> None:
    good = _record("X-1", "2024-01-01T00:00:00Z", "1.0")
    bad = _record("X-2", "2024-02-01T00:00:00Z", "not a version!")
    write_index(compile_index([good, bad], built=BUILT), tmp_path / "index.idx")
    loaded = load_index(tmp_path / "index.idx")
    assert (loaded.rejected_for("PyPI", "Some.Package"), loaded.rejected_counts()) == (
        [("X-2", "2024-02-01T00:00:00Z")],
        {"PyPI": 1},
    )
