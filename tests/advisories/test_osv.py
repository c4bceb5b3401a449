"""Reading OSV records from files, folders and zips."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from scanning.advisories.osv import iter_records
from scanning.errors import AdvisoryError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "advisories" / "osv"


@pytest.fixture(scope="module")
def osv() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared advisories not found at {SHARED}")
    return SHARED


def test_reads_the_whole_pypa_yaml_database(osv: Path) -> None:
    records = list(iter_records(osv / "pypi-pypa-advisory-database"))
    # 2,661 YAML records; the folder's 2,662nd file is PyPA's .id-allocator, not a record.
    assert (len(records), records[0]["id"]) == (2661, "PYSEC-2021-335")


def test_yaml_dates_stay_strings(osv: Path) -> None:
    record = next(iter_records(osv / "pypi-pypa-advisory-database" / "jinja2"))
    assert (type(record["modified"]), record["modified"][-1]) == (str, "Z")


def test_reads_the_vulns_wrapper_of_the_osv_dev_api(osv: Path) -> None:
    records = list(iter_records(osv / "maven-osv.dev-enriched"))
    assert len(records) == 364


def test_reads_records_from_a_bulk_zip(tmp_path: Path, osv: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for file in sorted((osv / "osv.dev-worker-testdata").iterdir()):
            writer.write(file, file.name)
    assert [r["id"] for r in iter_records(archive)] == [
        "DSA-3029-1",
        "GHSA-838r-hvwh-24h8",
        "UBUNTU-CVE-2025-38094",
    ]


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "X-1", ')
    with pytest.raises(AdvisoryError, match=r"bad\.json: not valid OSV JSON/YAML"):
        list(iter_records(bad))


def test_record_without_id_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "noid.json"
    bad.write_text(json.dumps({"affected": []}))
    with pytest.raises(AdvisoryError, match="must be an object with a string 'id'"):
        list(iter_records(bad))


def test_truncated_zip_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "all.zip"
    bad.write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(AdvisoryError, match="not a readable zip"):
        list(iter_records(bad))


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryError, match="no such file or folder"):
        list(iter_records(tmp_path / "absent"))
