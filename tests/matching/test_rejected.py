"""Packages that meet an advisory record the index rejected: never a confident "healthy"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.index import compile_index, diff_key_fingerprints, key_fingerprints
from scanning.advisories.osv import iter_records
from scanning.matching import MatchResult, lookup_signature, match_inventory
from scanning.model import AssessmentStatus, MatchDetail, Package, PackageType

BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)


def _pypi(name: str, version: str) -> Package:
    return Package(type=PackageType.PYPI, name=name, version=version, purl="", path="")


def _record(advisory_id: str, fixed: object, **affected: Any) -> dict[str, Any]:
    return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": "PyPI", "name": "some-package"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        **affected,
    }]}


def _outcome(result: MatchResult) -> tuple[AssessmentStatus, list[str], tuple[str, ...], str]:
    return result.status, [f.id for f in result.findings], result.warnings, result.reason


@pytest.mark.parametrize(
    ("path", "name", "version", "advisory_id"),
    [
        ("steam/PYSEC-2019-125.yaml", "steam", "1.0.0", "PYSEC-2019-125"),
        ("binderhub/PYSEC-2021-371.yaml", "binderhub", "0.1.0", "PYSEC-2021-371"),
    ],
)
def test_real_rejected_pypa_record_makes_its_package_partial(
    shared_advisories: Path, path: str, name: str, version: str, advisory_id: str
) -> None:
    folder = shared_advisories / "osv" / "pypi-pypa-advisory-database"
    index = compile_index(iter_records(folder / path), built=BUILT)
    warning = (f"{name} {version}: not assessed against advisory record {advisory_id}, "
               "which could not be compiled (rejected)")
    assert _outcome(match_inventory(None, [_pypi(name, version)], index)) == (
        AssessmentStatus.PARTIAL, [], (warning,), warning
    )


def test_a_finding_still_makes_the_package_unhealthy_and_the_warning_stays() -> None:
    index = compile_index([_record("X-1", "2.0"), _record("X-2", ["a", "b"])], built=BUILT)
    warning = ("Some_Package 1.5: not assessed against advisory record X-2, which could not "
               "be compiled (rejected)")
    assert _outcome(match_inventory(None, [_pypi("Some_Package", "1.5")], index)) == (
        AssessmentStatus.UNHEALTHY, ["X-1"], (warning,), warning
    )


def test_a_package_without_rejected_records_stays_healthy() -> None:
    index = compile_index([_record("X-2", ["a", "b"])], built=BUILT)
    assert _outcome(match_inventory(None, [_pypi("other", "1.5")], index)) == (
        AssessmentStatus.HEALTHY, [], (), ""
    )


def test_a_versions_list_match_says_the_range_could_not_be_compiled() -> None:
    index = compile_index([_record("X-1", "2019-09-12", versions=["1.0", "1.5"])], built=BUILT)
    [finding] = match_inventory(None, [_pypi("some-package", "1.5")], index).findings
    assert finding.match == MatchDetail(
        ecosystem="PyPI", searched_name="some-package", searched_version="1.5",
        range="listed in versions (a range could not be compiled: "
              "affected[0].ranges[0].events[1].fixed: not a PEP 440 version: '2019-09-12')",
    )


def test_a_version_outside_the_versions_list_is_not_affected() -> None:
    index = compile_index([_record("X-1", "2019-09-12", versions=["1.0", "1.5"])], built=BUILT)
    assert _outcome(match_inventory(None, [_pypi("some-package", "1.6")], index)) == (
        AssessmentStatus.HEALTHY, [], (), ""
    )


def test_lookup_signature_changes_when_a_record_under_the_key_is_rejected() -> None:
    lookup = ("PyPI", "some-package", "3.0")
    clean = compile_index([_record("X-1", "2.0")], built=BUILT)
    rejected = compile_index([_record("X-1", "2.0"), _record("X-2", ["a"])], built=BUILT)
    assert (lookup_signature(clean, lookup), lookup_signature(rejected, lookup) != "") == (
        "", True
    )


def test_a_record_becoming_rejected_changes_its_key_fingerprint() -> None:
    before = compile_index([_record("X-1", "2.0"), _record("X-2", "3.0")], built=BUILT)
    after = compile_index([_record("X-1", "2.0"), _record("X-2", ["3.0"])], built=BUILT)
    change = diff_key_fingerprints(key_fingerprints(before), key_fingerprints(after))
    assert (change.keys, change.ecosystems) == ({("PyPI", "some-package")}, frozenset())
