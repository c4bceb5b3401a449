"""Matching against real OSV records from ``../shared/testdata/advisories`` (read in place)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from scanning.analyzers.apk import ApkAnalyzer
from scanning.analyzers.base import AnalyzerInput
from scanning.matching import MatchResult, match_inventory
from scanning.model import AssessmentStatus, OSInfo, Package, PackageType
from scanning.versions import osv_ranges
from tests.matching.support import load_set


def _package(kind: PackageType, name: str, version: str, source: str = "") -> Package:
    return Package(type=kind, name=name, version=version, purl="", path="", source_name=source)


def _ids(result: MatchResult) -> list[tuple[str, str, str, str, str]]:
    return [
        (f.id, f.package, f.fixed_version, str(f.fix_status), f.severity.value)
        for f in result.findings
    ]


@pytest.fixture(scope="module")
def samples_index(shared_advisories: Path) -> AdvisoryIndex:
    osv = shared_advisories / "osv"
    return compile_index(
        [
            *iter_records(osv / "osv.dev-worker-testdata"),
            *iter_records(osv / "ubuntu-vunnel-fixtures"),
            *iter_records(osv / "grype-transformer-samples"),
            *iter_records(osv / "pypi-pypa-advisory-database" / "jinja2"),
        ]
    )


def test_pypa_jinja2_2_10_is_affected_by_cve_2019_10906(samples_index: AdvisoryIndex) -> None:
    result = match_inventory(None, [_package(PackageType.PYPI, "Jinja2", "2.10")], samples_index)
    assert ("CVE-2019-10906", ("GHSA-462w-v97r-4m45", "PYSEC-2019-217"), "2.10.1") in [
        (f.id, f.aliases, f.fixed_version) for f in result.findings
    ]


def test_pypa_jinja2_2_10_1_is_not_affected_by_cve_2019_10906(
    samples_index: AdvisoryIndex,
) -> None:
    result = match_inventory(None, [_package(PackageType.PYPI, "jinja2", "2.10.1")], samples_index)
    assert "CVE-2019-10906" not in [f.id for f in result.findings]


def test_go_stdlib_second_range_gives_its_own_fix(samples_index: AdvisoryIndex) -> None:
    result = match_inventory(
        None, [_package(PackageType.GOLANG, "stdlib", "go1.19.0")], samples_index
    )
    assert [(f.id, f.fixed_version, f.aliases) for f in result.findings] == [
        ("CVE-2022-27664", "1.19.1", ("GHSA-69cg-p879-7622", "GO-2022-0969"))
    ]


def test_debian_dsa_record_matches_its_release(samples_index: AdvisoryIndex) -> None:
    result = match_inventory(
        OSInfo(id="debian", version_id="7"),
        [_package(PackageType.DPKG, "nginx-common", "1.2.1-2.2+wheezy2", "nginx")],
        samples_index,
    )
    assert _ids(result) == [
        ("CVE-2014-3616", "nginx-common", "1.2.1-2.2+wheezy3", "fixed", "unknown")
    ]


def test_ubuntu_priority_wins_over_cvss(samples_index: AdvisoryIndex) -> None:
    # UBUNTU-CVE-2014-9913 carries CVSS 3.0 AV:L/.../A:L (low) and Ubuntu priority negligible.
    result = match_inventory(
        OSInfo(id="ubuntu", version_id="16.04"),
        [_package(PackageType.DPKG, "unzip", "6.0-20ubuntu1")],
        samples_index,
    )
    assert (_ids(result), result.findings[0].vendor_severity) == (
        [("CVE-2014-9913", "unzip", "6.0-20ubuntu1.1", "fixed", "negligible")],
        "negligible",
    )


def test_almalinux_record_with_epoch(samples_index: AdvisoryIndex) -> None:
    result = match_inventory(
        OSInfo(id="almalinux", version_id="10.0"),
        [_package(PackageType.RPM, "skopeo", "2:1.18.0-1.el10", "skopeo")],
        samples_index,
    )
    assert _ids(result) == [("CVE-2025-27144", "skopeo", "2:1.18.1-1.el10_0", "fixed", "unknown")]


def test_chainguard_fixed_0_never_matches(samples_index: AdvisoryIndex) -> None:
    result = match_inventory(
        OSInfo(id="chainguard", version_id=""),
        [
            _package(PackageType.APK, "syncthing", "2.0.13-r0", "syncthing"),
            _package(PackageType.APK, "syncthing-compat", "2.0.13-r0", "syncthing-compat"),
        ],
        samples_index,
    )
    assert _ids(result) == [("CGA-xcpc-gm23-prj9", "syncthing", "2.0.14-r1", "fixed", "medium")]


# --- Maven records with osv.dev's enumerated affected versions ----------------------------

# Versions osv.dev enumerates as affected but the range itself excludes: osv.dev's Maven
# ordering puts "9.0.0.M1" (dot before the milestone) above "9.0.0-M11"; Maven's
# ComparableVersion (and scanning.versions) puts it below. Matching still reports them,
# because the index keeps the enumerated list (see the next test).
KNOWN_RANGE_DIVERGENCES = {
    ("GHSA-f4qf-m5gf-8jm8", "org.apache.tomcat:tomcat-coyote", v)
    for v in ("9.0.0.M1", "9.0.0.M3", "9.0.0.M4", "9.0.0.M6", "9.0.0.M8", "9.0.0.M9", "9.0.0.M10")
}


def _enumerated(shared: Path) -> Iterator[tuple[str, dict[str, Any], str]]:
    for record in iter_records(shared / "osv" / "maven-osv.dev-enriched"):
        for affected in record.get("affected", []):
            for version in affected.get("versions", []):
                yield record["id"], affected, version


def test_ranges_agree_with_osv_dev_enumerated_versions(shared_advisories: Path) -> None:
    disagreements = set()
    checked = 0
    for advisory_id, affected, version in _enumerated(shared_advisories):
        if not affected.get("ranges"):
            continue  # the enumeration is the only data: nothing to compare against
        ranges_only = osv_ranges.compile_affected({**affected, "versions": []})
        checked += 1
        if not osv_ranges.evaluate(ranges_only, version).affected:
            disagreements.add((advisory_id, affected["package"]["name"], version))
    assert (checked, disagreements) == (30102, KNOWN_RANGE_DIVERGENCES)


def test_index_reports_every_enumerated_version(shared_advisories: Path) -> None:
    # The index keeps the enumerated list next to the ranges, so what osv.dev lists is found
    # even where the orderings disagree (KNOWN_RANGE_DIVERGENCES).
    index = compile_index(iter_records(shared_advisories / "osv" / "maven-osv.dev-enriched"))
    missed = []
    for advisory_id, affected, version in _enumerated(shared_advisories):
        package = affected["package"]
        entries = [
            entry
            for found_id, entry in index.lookup(package["ecosystem"], package["name"])
            if found_id == advisory_id
        ]
        if not any(osv_ranges.evaluate(index.compiled(e), version).affected for e in entries):
            missed.append((advisory_id, version))
    assert missed == []


# --- Alpine 3.10: the secdb adapter with the real installed database -----------------------


@pytest.fixture(scope="module")
def alpine_310_index(shared_advisories: Path) -> AdvisoryIndex:
    return compile_index(iter_secdb_osv(shared_advisories / "alpine-secdb-yaml" / "v3.10"))


def _alpine_310_packages(shared: Path) -> tuple[Package, ...]:
    installed = shared.parent / "pkgdb" / "apk" / "trivy-image-alpine-310.installed"
    with installed.open("rb") as reader:
        output = ApkAnalyzer().analyze(
            AnalyzerInput(path="lib/apk/db/installed", size=installed.stat().st_size, reader=reader)
        )
    return output.packages


def test_alpine_3_10_4_has_every_secdb_fix(
    shared_advisories: Path, alpine_310_index: AdvisoryIndex
) -> None:
    # Alpine 3.10.4 shipped musl 1.1.22-r3 (fixes CVE-2019-14697), openssl 1.1.1d-r2 (after
    # 1.1.1d-r0, which fixes CVE-2019-1547/1549/1563) and busybox 1.30.1-r3 (after -r2,
    # CVE-2019-5747): the secdb of its own branch lists nothing it is missing.
    packages = _alpine_310_packages(shared_advisories)
    result = match_inventory(OSInfo(id="alpine", version_id="3.10.4"), packages, alpine_310_index)
    assert (len(packages), result) == (
        14,
        MatchResult(status=AssessmentStatus.HEALTHY, findings=(), reason=""),
    )


def test_alpine_3_10_older_packages_get_the_secdb_findings(
    alpine_310_index: AdvisoryIndex,
) -> None:
    os_info, packages = load_set("alpine310_old")
    result = match_inventory(os_info, packages, alpine_310_index)
    assert [
        (f.id, f.aliases, f.package, f.installed_version, f.fixed_version, f.remediation)
        for f in result.findings
    ] == [
        (
            "CVE-2019-1547",
            ("ALPINE-v3.10-openssl-CVE-2019-1547",),
            "libcrypto1.1",
            "1.1.1c-r0",
            "1.1.1d-r0",
            "Upgrade libcrypto1.1 (source package openssl) from 1.1.1c-r0 to 1.1.1d-r0 "
            "(fixed in Alpine 3.10)",
        ),
        (
            "CVE-2019-1549",
            ("ALPINE-v3.10-openssl-CVE-2019-1549",),
            "libcrypto1.1",
            "1.1.1c-r0",
            "1.1.1d-r0",
            "Upgrade libcrypto1.1 (source package openssl) from 1.1.1c-r0 to 1.1.1d-r0 "
            "(fixed in Alpine 3.10)",
        ),
        (
            "CVE-2019-1563",
            ("ALPINE-v3.10-openssl-CVE-2019-1563",),
            "libcrypto1.1",
            "1.1.1c-r0",
            "1.1.1d-r0",
            "Upgrade libcrypto1.1 (source package openssl) from 1.1.1c-r0 to 1.1.1d-r0 "
            "(fixed in Alpine 3.10)",
        ),
        (
            "CVE-2019-14697",
            ("ALPINE-v3.10-musl-CVE-2019-14697",),
            "musl",
            "1.1.22-r2",
            "1.1.22-r3",
            "Upgrade musl from 1.1.22-r2 to 1.1.22-r3 (fixed in Alpine 3.10)",
        ),
    ]


# --- The Alpine branch from etc/apk/repositories -------------------------------------------


@pytest.fixture(scope="module")
def alpine_310_311_index(shared_advisories: Path) -> AdvisoryIndex:
    secdb = shared_advisories / "alpine-secdb-yaml"
    return compile_index(itertools.chain(iter_secdb_osv(secdb / "v3.10"),
                                         iter_secdb_osv(secdb / "v3.11")))


def _musl_findings(os_info: OSInfo, shared: Path, index: AdvisoryIndex) -> list[tuple[str, str]]:
    # Alpine 3.10.4's musl 1.1.22-r3 has the v3.10 fix for CVE-2019-14697; v3.11 fixed it in
    # 1.1.23-r2, so matched as v3.11 the same package is affected.
    packages = tuple(p for p in _alpine_310_packages(shared) if p.name == "musl")
    return [(f.id, f.fixed_version) for f in match_inventory(os_info, packages, index).findings]


def test_alpine_without_branch_matches_version_id_branch(
    shared_advisories: Path, alpine_310_311_index: AdvisoryIndex
) -> None:
    os_info = OSInfo(id="alpine", version_id="3.10.4")
    assert _musl_findings(os_info, shared_advisories, alpine_310_311_index) == []


def test_alpine_branch_from_repositories_is_the_branch_matched(
    shared_advisories: Path, alpine_310_311_index: AdvisoryIndex
) -> None:
    os_info = OSInfo(id="alpine", version_id="3.10.4", branch="v3.11")
    assert _musl_findings(os_info, shared_advisories, alpine_310_311_index) == [
        ("CVE-2019-14697", "1.1.23-r2")]


def test_alpine_edge_is_the_newest_branch_the_index_has(
    shared_advisories: Path, alpine_310_311_index: AdvisoryIndex
) -> None:
    os_info = OSInfo(id="alpine", version_id="3.10.4", branch="edge")
    assert _musl_findings(os_info, shared_advisories, alpine_310_311_index) == [
        ("CVE-2019-14697", "1.1.23-r2")]
