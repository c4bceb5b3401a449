"""Findings of records that alias each other on one package become one finding."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from scanning.matching import match_inventory
from scanning.model import AssessmentStatus, Finding, Package, PackageType
from scanning.report import PlatformReport, ScanReport, render_table

BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)
CVSS_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 7.5
CVSS_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8


def _pypi(name: str, version: str) -> Package:
    return Package(type=PackageType.PYPI, name=name, version=version, purl="", path="")


def _record(advisory_id: str, fixed: str = "", **fields: Any) -> dict[str, Any]:
    events: list[dict[str, str]] = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
    return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", **fields, "affected": [{
        "package": {"ecosystem": "PyPI", "name": "pkg"},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }]}


def _findings(records: list[dict[str, Any]], version: str = "1.0") -> tuple[Finding, ...]:
    index = compile_index(records, built=BUILT)
    return match_inventory(None, [_pypi("pkg", version)], index).findings


@pytest.fixture(scope="module")
def pypi_with_ghsa(shared_advisories: Path) -> AdvisoryIndex:
    osv = shared_advisories / "osv"
    return compile_index([
        *iter_records(osv / "pypi-pypa-advisory-database" / "protobuf"),
        *iter_records(osv / "pypi-pypa-advisory-database" / "avro"),
        *iter_records(osv / "maven-osv.dev-enriched" / "zeppelin-server_vulnerabilities.json"),
    ], ecosystems=["PyPI"], built=BUILT)


def _summary(finding: Finding) -> tuple[Any, ...]:
    return (finding.id, finding.aliases, finding.fixed_version, finding.severity.value,
            finding.vendor_severity)


def test_real_pysec_and_ghsa_records_give_one_finding_with_the_cve_and_the_ghsa_rating(
    pypi_with_ghsa: AdvisoryIndex,
) -> None:
    # PYSEC-2022-48 carries no severity; GHSA-77rm-9x9h-xj3g is rated HIGH by GitHub.
    result = match_inventory(None, [_pypi("protobuf", "3.14.0")], pypi_with_ghsa)
    assert (result.status, [_summary(f) for f in result.findings]) == (
        AssessmentStatus.UNHEALTHY,
        [("CVE-2021-22570", ("GHSA-77rm-9x9h-xj3g", "PYSEC-2022-48"), "3.15.0", "high", "HIGH")],
    )


def test_real_pysec_and_ghsa_records_of_a_second_package_group_alike(
    pypi_with_ghsa: AdvisoryIndex,
) -> None:
    result = match_inventory(None, [_pypi("avro", "1.11.2")], pypi_with_ghsa)
    assert [_summary(f) for f in result.findings] == [
        ("CVE-2023-39410", ("GHSA-rhrv-645h-fjfh", "PYSEC-2023-188"), "1.11.3", "high", "HIGH")
    ]


def test_records_linked_only_through_a_third_are_one_finding() -> None:
    findings = _findings([
        _record("A-1", "2.0", aliases=["B-1"]),
        _record("C-1", "2.0", aliases=["B-1"]),
        _record("B-1", "2.0", aliases=["D-1"]),
    ])
    assert [(f.id, f.aliases) for f in findings] == [("A-1", ("B-1", "C-1", "D-1"))]


def test_the_lowest_fix_of_the_members_is_reported() -> None:
    [finding] = _findings([
        _record("A-1", "1.10", aliases=["CVE-2099-1"]),
        _record("B-1", "1.9", aliases=["CVE-2099-1"]),
        _record("C-1", aliases=["CVE-2099-1"]),
    ])
    assert (finding.fixed_version, str(finding.fix_status), finding.remediation) == (
        "1.9", "fixed", "Upgrade pkg from 1.0 to 1.9 (fixed in PyPI)"
    )


def test_a_vendor_rating_wins_over_a_higher_cvss_score_of_another_member() -> None:
    [finding] = _findings([
        _record("A-1", "2.0", aliases=["CVE-2099-1"],
                severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}]),
        _record("B-1", "2.0", aliases=["CVE-2099-1"], database_specific={"severity": "LOW"}),
    ])
    assert (finding.severity.value, finding.vendor_severity,
            [score.base_score for score in finding.cvss]) == ("low", "LOW", [9.8])


def test_without_a_vendor_rating_the_highest_cvss_of_any_member_decides() -> None:
    [finding] = _findings([
        _record("A-1", "2.0", aliases=["CVE-2099-1"],
                severity=[{"type": "CVSS_V3", "score": CVSS_HIGH}]),
        _record("B-1", "2.0", aliases=["CVE-2099-1"],
                severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}]),
    ])
    assert (finding.severity.value, finding.vendor_severity,
            [score.base_score for score in finding.cvss]) == ("critical", "", [9.8, 7.5])


def test_a_bundle_naming_several_upstream_cves_does_not_merge_them() -> None:
    findings = _findings([
        _record("UBUNTU-CVE-2099-1", "2.0", upstream=["CVE-2099-1"]),
        _record("UBUNTU-CVE-2099-2", "2.0", upstream=["CVE-2099-2"]),
        _record("USN-9999-1", "2.0", upstream=["CVE-2099-1", "CVE-2099-2"]),
    ])
    assert sorted((f.id, f.aliases) for f in findings) == [
        ("CVE-2099-1", ("UBUNTU-CVE-2099-1",)),
        ("CVE-2099-2", ("UBUNTU-CVE-2099-2",)),
        ("USN-9999-1", ("CVE-2099-1", "CVE-2099-2")),
    ]


def test_the_table_shows_the_cve_id(pypi_with_ghsa: AdvisoryIndex) -> None:
    result = match_inventory(None, [_pypi("protobuf", "3.14.0")], pypi_with_ghsa)
    report = ScanReport(reference="img", digest="sha256:1", platforms=(PlatformReport(
        platform="linux/amd64", os=None, status=result.status, findings=result.findings),))
    assert render_table(report).splitlines()[-2:] == [
        "    PACKAGE   INSTALLED  FIXED   ADVISORY        STATUS",
        "    protobuf  3.14.0     3.15.0  CVE-2021-22570  fixed",
    ]
