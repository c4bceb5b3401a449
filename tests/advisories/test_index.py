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
