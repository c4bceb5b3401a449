"""match_inventory over the project's fixture records and package sets (fixtures/README.md)."""

from __future__ import annotations

import dataclasses

from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.matching import MatchResult, group_aliases, match_inventory, os_target
from scanning.model import (
    AssessmentStatus,
    CvssScore,
    Finding,
    FixStatus,
    MatchDetail,
    OSInfo,
    PackageType,
    Severity,
)
from tests.matching.support import load_set

BASE_LAYER = "sha256:" + "2" * 64


def _summary(result: MatchResult) -> list[tuple[str, ...]]:
    return [
        (
            f.id,
            f.package,
            f.installed_version,
            f.fixed_version,
            str(f.fix_status),
            f.severity.value,
            f.remediation,
        )
        for f in result.findings
    ]


def _match(name: str, index: AdvisoryIndex) -> MatchResult:
    os_info, packages = load_set(name)
    return match_inventory(os_info, packages, index, base_layer_digests={BASE_LAYER})


def test_debian_matches_by_source_package_and_source_version(fixture_index: AdvisoryIndex) -> None:
    assert _summary(_match("debian12", fixture_index)) == [
        (
            "CVE-2099-1003",
            "libc6",
            "2.36-9+deb12u3",
            "",
            "not_fixed",
            "critical",
            "No fix is available yet in Debian 12",
        ),
        (
            "CVE-2099-1004",
            "libfoo1",
            "2.4-1+b1",
            "1:2.3-1",
            "fixed",
            "high",
            "Upgrade libfoo1 (source package libfoo) from 2.4-1 to 1:2.3-1 (fixed in Debian 12)",
        ),
        (
            "CVE-2099-1001",
            "libssl3",
            "3.0.11-1~deb12u1",
            "3.0.11-1~deb12u2",
            "fixed",
            "high",
            "Upgrade libssl3 (source package openssl) from 3.0.11-1~deb12u1 to "
            "3.0.11-1~deb12u2 (fixed in Debian 12)",
        ),
        (
            "CVE-2099-1001",
            "openssl",
            "3.0.11-1~deb12u1",
            "3.0.11-1~deb12u2",
            "fixed",
            "high",
            "Rebuild on a newer base image: the package comes from the base layer "
            "(openssl 3.0.11-1~deb12u2 is fixed in Debian 12)",
        ),
        (
            "CVE-2099-1002",
            "libsystemd0",
            "252.19-1~deb12u1",
            "",
            "unimportant",
            "negligible",
            "No fix is planned: Debian 12 rates this issue unimportant",
        ),
    ]


def test_debian_finding_carries_every_field(fixture_index: AdvisoryIndex) -> None:
    finding = _match("debian12", fixture_index).findings[2]
    assert finding == Finding(
        id="CVE-2099-1001",
        aliases=("DEBIAN-CVE-2099-1001",),
        package="libssl3",
        installed_version="3.0.11-1~deb12u1",
        package_type=PackageType.DPKG,
        purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12",
        source_package="openssl",
        fixed_version="3.0.11-1~deb12u2",
        fix_status=FixStatus.FIXED,
        severity=Severity.HIGH,
        vendor_severity="high",
        cvss=(
            CvssScore(
                version="3.1",
                vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                base_score=9.8,
                severity=Severity.CRITICAL,
            ),
        ),
        remediation=(
            "Upgrade libssl3 (source package openssl) from 3.0.11-1~deb12u1 to "
            "3.0.11-1~deb12u2 (fixed in Debian 12)"
        ),
        summary="DEBIAN-CVE-2099-1001 test advisory",
        description="",
        published="2024-01-01T00:00:00Z",
        modified="2024-01-01T00:00:00Z",
        references=(),
        layer_digest="sha256:" + "1" * 64,
        layer_instruction="",
        path="var/lib/dpkg/status",
        match=MatchDetail(
            ecosystem="Debian:12",
            searched_name="openssl",
            searched_version="3.0.11-1~deb12u1",
            range="introduced 0, fixed 3.0.11-1~deb12u2",
        ),
    )


def test_ubuntu_prefers_the_ubuntu_pro_fix_over_the_unfixed_standard_entry(
    fixture_index: AdvisoryIndex,
) -> None:
    assert _summary(_match("ubuntu2204", fixture_index)) == [
        (
            "CVE-2099-2001",
            "libcurl4",
            "7.81.0-1ubuntu1.14",
            "7.81.0-1ubuntu1.15",
            "fixed",
            "medium",
            "Upgrade libcurl4 (source package curl) from 7.81.0-1ubuntu1.14 to "
            "7.81.0-1ubuntu1.15 (fixed in Ubuntu 22.04 LTS)",
        ),
        (
            "CVE-2099-2002",
            "libncursesw6",
            "6.3-2ubuntu0.1",
            "6.3-2ubuntu0.1+esm1",
            "fixed",
            "low",
            "Upgrade libncursesw6 (source package ncurses) from 6.3-2ubuntu0.1 to "
            "6.3-2ubuntu0.1+esm1 (fixed in Ubuntu Pro 22.04 LTS)",
        ),
    ]


def test_almalinux_matches_the_binary_rpm_name_with_epoch(fixture_index: AdvisoryIndex) -> None:
    result = _match("alma9", fixture_index)
    assert (_summary(result), result.findings[0].match.searched_name) == (
        [
            (
                "CVE-2099-3001",
                "openssl-libs",
                "1:3.0.7-24.el9",
                "1:3.0.7-25.el9_3",
                "fixed",
                "high",
                "Upgrade openssl-libs (source package openssl) from 1:3.0.7-24.el9 to "
                "1:3.0.7-25.el9_3 (fixed in AlmaLinux 9)",
            )
        ],
        "openssl-libs",
    )


def test_rocky_matches_the_source_rpm_name(fixture_index: AdvisoryIndex) -> None:
    result = _match("rocky9", fixture_index)
    assert [(f.id, f.match.ecosystem, f.match.searched_name) for f in result.findings] == [
        ("CVE-2099-3001", "Rocky Linux:9", "openssl")
    ]


def test_language_packages_match_by_normalised_name_and_ranges(
    fixture_index: AdvisoryIndex,
) -> None:
    result = _match("languages", fixture_index)
    assert (result.status, _summary(result)) == (
        AssessmentStatus.UNHEALTHY,
        [
            (
                "CVE-2099-4002",
                "@scope/widget",
                "1.2.2",
                "1.2.3",
                "fixed",
                "critical",
                "Upgrade @scope/widget from 1.2.2 to 1.2.3 (fixed in npm)",
            ),
            (
                "CVE-2099-4002",
                "@scope/widget",
                "2.1.0",
                "",
                "not_fixed",
                "critical",
                "No fix is available yet in npm",
            ),
            (
                "CVE-2099-4005",
                "lib",
                "2.4",
                "2.5.1",
                "fixed",
                "critical",
                "Upgrade lib from 2.4 to 2.5.1 (fixed in Maven)",
            ),
            (
                "CVE-2099-4001",
                "Foo.Bar_baz",
                "2.0.0",
                "2.0.1",
                "fixed",
                "medium",
                "Upgrade Foo.Bar_baz from 2.0.0 to 2.0.1 (fixed in PyPI)",
            ),
            (
                "CVE-2099-4003",
                "github.com/example/mod",
                "v1.3.9",
                "1.4.0",
                "fixed",
                "unknown",
                "Upgrade github.com/example/mod from 1.3.9 to 1.4.0 (fixed in Go)",
            ),
            (
                "CVE-2099-4004",
                "stdlib",
                "go1.21.0",
                "1.21.1",
                "fixed",
                "unknown",
                "Upgrade stdlib from 1.21.0 to 1.21.1 (fixed in Go)",
            ),
        ],
    )


def test_maven_lookup_uses_group_from_the_purl(fixture_index: AdvisoryIndex) -> None:
    result = _match("languages", fixture_index)
    assert [f.match for f in result.findings if f.package == "lib"] == [
        MatchDetail(
            ecosystem="Maven",
            searched_name="org.example:lib",
            searched_version="2.4",
            range="introduced 2.0, fixed 2.5.1",
        )
    ]


def test_fixed_versions_are_healthy(fixture_index: AdvisoryIndex) -> None:
    os_info, packages = load_set("debian12")
    upgraded = [
        dataclasses.replace(p, version="3.0.11-1~deb12u2")
        for p in packages
        if p.source == "openssl"
    ]
    assert match_inventory(os_info, upgraded, fixture_index) == MatchResult(
        status=AssessmentStatus.HEALTHY, findings=(), reason=""
    )


def test_unknown_os_with_os_packages_is_unsupported(fixture_index: AdvisoryIndex) -> None:
    _, packages = load_set("debian12")
    os_info = OSInfo(id="plan9", version_id="4", pretty_name="Plan 9")
    assert match_inventory(os_info, packages, fixture_index) == MatchResult(
        status=AssessmentStatus.UNSUPPORTED,
        findings=(),
        reason="no advisory data for the operating system Plan 9",
    )


def test_os_packages_without_a_detected_os_are_unsupported(fixture_index: AdvisoryIndex) -> None:
    _, packages = load_set("alma9")
    assert match_inventory(None, packages, fixture_index) == MatchResult(
        status=AssessmentStatus.UNSUPPORTED,
        findings=(),
        reason="1 OS packages but no operating system was detected",
    )


def test_index_without_the_os_release_is_unsupported_not_healthy(
    fixture_index: AdvisoryIndex,
) -> None:
    _, packages = load_set("debian12")
    os_info = OSInfo(id="debian", version_id="13")
    assert match_inventory(os_info, packages, fixture_index) == MatchResult(
        status=AssessmentStatus.UNSUPPORTED,
        findings=(),
        reason="the advisory index has no records for Debian 13 (Debian:13)",
    )


def test_distroless_image_with_only_language_packages_is_assessed(
    fixture_index: AdvisoryIndex,
) -> None:
    _, packages = load_set("languages")
    result = match_inventory(None, packages[:1], fixture_index)
    assert (result.status, [f.id for f in result.findings], result.reason) == (
        AssessmentStatus.UNHEALTHY,
        ["CVE-2099-4001"],
        "",
    )


def test_unsupported_os_still_reports_language_findings(fixture_index: AdvisoryIndex) -> None:
    _, os_packages = load_set("alma9")
    _, language = load_set("languages")
    result = match_inventory(
        OSInfo(id="plan9", version_id="4"), os_packages + language[:1], fixture_index
    )
    assert (result.status, [f.id for f in result.findings], result.reason) == (
        AssessmentStatus.UNHEALTHY,
        ["CVE-2099-4001"],
        "no advisory data for the operating system plan9 4",
    )


def test_missing_language_ecosystem_is_reported(fixture_index: AdvisoryIndex) -> None:
    _, packages = load_set("languages")
    index = compile_index([], sources=())
    assert match_inventory(None, packages, index) == MatchResult(
        status=AssessmentStatus.UNSUPPORTED,
        findings=(),
        reason=(
            "the advisory index has no records for Go; the advisory index has no records for "
            "Maven; the advisory index has no records for PyPI; the advisory index has no "
            "records for npm"
        ),
    )


def test_os_target_uses_the_osv_ecosystem_strings() -> None:
    cases = {
        ("debian", "12"): ("Debian:12",),
        ("ubuntu", "22.04"): ("Ubuntu:22.04:LTS", "Ubuntu:Pro:22.04:LTS"),
        ("ubuntu", "23.10"): ("Ubuntu:23.10",),
        ("alpine", "3.20.3"): ("Alpine:v3.20",),
        ("almalinux", "9.3"): ("AlmaLinux:9",),
        ("rocky", "8.9"): ("Rocky Linux:8",),
        ("sles", "15.5"): ("SUSE:Linux Enterprise Server 15 SP5",),
        ("opensuse-leap", "15.5"): ("openSUSE:Leap 15.5",),
        ("mariner", "2.0"): ("Mariner:2.0",),
        ("azurelinux", "3.0"): ("Azure Linux:3.0",),
        ("wolfi", "20230201"): ("Wolfi",),
        ("chainguard", ""): ("Chainguard",),
    }
    found = {}
    for (os_id, version), _ in cases.items():
        target = os_target(OSInfo(id=os_id, version_id=version))
        found[(os_id, version)] = target.ecosystems if target else None
    assert found == cases


def test_rhel_target_is_every_red_hat_ecosystem_of_that_major() -> None:
    target = os_target(OSInfo(id="rhel", version_id="9.2"))
    assert (target.prefixes if target else None) == ("Red Hat:enterprise_linux:9:",)


def test_aliases_put_cve_ids_first_then_the_rest_sorted_then_bundle_upstream_ids() -> None:
    assert group_aliases(
        "CVE-2020-9", ["PYSEC-2021-1", "CVE-2021-10", "GHSA-x", "CVE-2020-9"],
        ["CVE-2021-10", "CVE-2019-1"],
    ) == ("CVE-2021-10", "GHSA-x", "PYSEC-2021-1", "CVE-2019-1")
