"""Findings for store and rule tests, built field by field so expected values are exact."""

from __future__ import annotations

from scanning.model import CvssScore, Finding, FixStatus, MatchDetail, PackageType, Severity


def make_finding(vuln_id: str = "CVE-2024-0001", package: str = "openssl", *,
                 version: str = "3.0.1-1", severity: Severity = Severity.HIGH,
                 fix_status: FixStatus = FixStatus.FIXED, aliases: tuple[str, ...] = (),
                 disabled_by: str = "", score: float | None = None,
                 source_package: str = "") -> Finding:
    cvss = () if score is None else (
        CvssScore(version="3.1", vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                  base_score=score, severity=severity),)
    return Finding(
        id=vuln_id, aliases=aliases, package=package, installed_version=version,
        package_type=PackageType.DPKG, purl=f"pkg:deb/debian/{package}@{version}",
        source_package=source_package or package,
        fixed_version="3.0.2-1" if fix_status is FixStatus.FIXED else "",
        fix_status=fix_status, severity=severity, vendor_severity="", cvss=cvss,
        remediation="Upgrade", summary=f"{vuln_id} in {package}", description="details",
        published="2024-01-01T00:00:00Z", modified="2024-02-01T00:00:00Z",
        references=("https://example.invalid/advisory",), layer_digest="sha256:" + "a" * 64,
        layer_instruction="RUN apt-get install", path="/var/lib/dpkg/status",
        match=MatchDetail(ecosystem="Debian:12", searched_name=package,
                          searched_version=version, range="introduced 0, fixed 3.0.2-1"),
        disabled_by=disabled_by,
    )
