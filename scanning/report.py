"""Scan results as a terminal table, JSON, SARIF 2.1.0 or CycloneDX 1.5: pure functions.

The JSON shape is the project's contract (README section ``scan``)::

    {"image": {"reference": …, "digest": …},
     "platforms": [{"platform": "linux/amd64", "os": {"name", "version"} | null,
                    "status": "unhealthy", "reason": "",
                    "packages": [{"name", "version", "ecosystem", "purl", "layerDigest", …}],
                    "findings": [{"id", "aliases", "package", "installedVersion",
                                  "fixedVersion", "fixStatus", "severity", "remediation", …}]}]}

SARIF: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html (one rule per advisory,
one result per finding, ``security-severity`` as GitHub code scanning reads it).
CycloneDX: https://cyclonedx.org/docs/1.5/json/ (components plus ``vulnerabilities`` whose
``affects`` point at the components' ``bom-ref``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scanning.model import (
    AssessmentStatus,
    Finding,
    FixStatus,
    OSInfo,
    Package,
    PackageType,
    Severity,
)

TOOL_NAME = "acr-scan"
TOOL_URI = "https://github.com/acr-scan/acr-scan"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportPackage:
    package: Package
    ecosystem: str  # OSV ecosystem the package was looked up in ("Debian:12", "PyPI")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformReport:
    platform: str
    os: OSInfo | None
    status: AssessmentStatus
    reason: str = ""
    packages: tuple[ReportPackage, ...] = ()
    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanReport:
    reference: str
    digest: str
    platforms: tuple[PlatformReport, ...]


def filter_findings(
    report: ScanReport, *, severities: Iterable[Severity] = (), ignore_unfixed: bool = False
) -> ScanReport:
    """Keep findings of the given severities (all when empty) and, if asked, only fixable ones.

    The platform status stays what the assessment said: filters change what is shown (and the
    exit code), not whether the image is healthy.
    """
    wanted = frozenset(severities)

    def keep(finding: Finding) -> bool:
        if wanted and finding.severity not in wanted:
            return False
        return not (ignore_unfixed and finding.fix_status != FixStatus.FIXED)

    return replace(
        report,
        platforms=tuple(
            replace(p, findings=tuple(f for f in p.findings if keep(f))) for p in report.platforms
        ),
    )


# --- JSON -----------------------------------------------------------------------------------


def to_json(report: ScanReport) -> dict[str, Any]:
    return {
        "image": {"reference": report.reference, "digest": report.digest},
        "platforms": [_platform_json(p) for p in report.platforms],
    }


def _os_json(os_info: OSInfo | None) -> dict[str, str] | None:
    if os_info is None:
        return None
    data = {"name": os_info.id, "version": os_info.version_id}
    if os_info.branch:
        data["branch"] = os_info.branch  # the branch advisories were matched against
    return data


def _platform_json(platform: PlatformReport) -> dict[str, Any]:
    return {
        "platform": platform.platform,
        "os": _os_json(platform.os),
        "status": str(platform.status),
        "reason": platform.reason,
        "warnings": list(platform.warnings),
        "packages": [package_json(p) for p in platform.packages],
        "findings": [finding_json(f) for f in platform.findings],
    }


def package_json(item: ReportPackage) -> dict[str, Any]:
    package = item.package
    return {
        "name": package.name,
        "version": package.version,
        "ecosystem": item.ecosystem,
        "type": str(package.type),
        "purl": package.purl,
        "sourceName": package.source,
        "sourceVersion": package.source_ver,
        "layerDigest": package.layer_digest,
        "layerInstruction": package.layer_instruction,
        "path": package.path,
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "aliases": list(finding.aliases),
        "package": finding.package,
        "installedVersion": finding.installed_version,
        "fixedVersion": finding.fixed_version,
        "fixStatus": str(finding.fix_status),
        "severity": finding.severity.value,
        "vendorSeverity": finding.vendor_severity,
        "cvss": [
            {
                "version": score.version,
                "vector": score.vector,
                "baseScore": score.base_score,
                "severity": score.severity.value,
            }
            for score in finding.cvss
        ],
        "remediation": finding.remediation,
        "sourcePackage": finding.source_package,
        "packageType": str(finding.package_type),
        "purl": finding.purl,
        "layerDigest": finding.layer_digest,
        "layerInstruction": finding.layer_instruction,
        "path": finding.path,
        "summary": finding.summary,
        "published": finding.published,
        "modified": finding.modified,
        "references": list(finding.references),
        "match": {
            "ecosystem": finding.match.ecosystem,
            "searchedName": finding.match.searched_name,
            "searchedVersion": finding.match.searched_version,
            "range": finding.match.range,
        },
    }


def render_json(report: ScanReport) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


# --- table ----------------------------------------------------------------------------------


def render_table(report: ScanReport) -> str:
    """Findings grouped by severity, most severe first, with package, versions and fix."""
    lines = [f"{report.reference} ({report.digest})"]
    for platform in report.platforms:
        os_text = f"{platform.os.id} {platform.os.version_id}".strip() if platform.os else "no OS"
        if platform.os is not None and platform.os.branch:
            os_text += f" (matched as {platform.os.branch})"
        lines.append("")
        lines.append(
            f"{platform.platform}  {os_text}  {platform.status}: "
            f"{len(platform.packages)} packages, {len(platform.findings)} findings"
        )
        if platform.reason:
            lines.append(f"  note: {platform.reason}")
        lines.extend(f"  warning: {text}" for text in platform.warnings)
        for severity in sorted(Severity, reverse=True):
            group = [f for f in platform.findings if f.severity == severity]
            if not group:
                continue
            lines.append("")
            lines.append(f"  {severity.value.upper()} ({len(group)})")
            rows = [
                (f.package, f.installed_version, f.fixed_version or "-", f.id, str(f.fix_status))
                for f in group
            ]
            header = ("PACKAGE", "INSTALLED", "FIXED", "ADVISORY", "STATUS")
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                lines.append(("    " + cells).rstrip())
    return "\n".join(lines).rstrip() + "\n"


# --- SARIF 2.1.0 ----------------------------------------------------------------------------

_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NEGLIGIBLE: "note",
    Severity.UNKNOWN: "note",
}
# GitHub code scanning reads "security-severity" (0.0-10.0); without a CVSS score we give the
# middle of the band the severity names.
_BAND_SCORE = {
    Severity.CRITICAL: 9.5,
    Severity.HIGH: 8.0,
    Severity.MEDIUM: 5.5,
    Severity.LOW: 2.0,
    Severity.NEGLIGIBLE: 0.5,
    Severity.UNKNOWN: 0.0,
}


def to_sarif(report: ScanReport) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for platform in report.platforms:
        for finding in platform.findings:
            if finding.id not in rules:
                rules[finding.id] = _sarif_rule(finding)
            results.append(
                {
                    "ruleId": finding.id,
                    "level": _SARIF_LEVEL[finding.severity],
                    "message": {
                        "text": (
                            f"{finding.package} {finding.installed_version} is affected by "
                            f"{finding.id} ({finding.severity.value}). {finding.remediation}"
                        )
                    },
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": finding.path or report.reference}
                            },
                            "logicalLocations": [
                                {"name": finding.purl or finding.package, "kind": "package"}
                            ],
                        }
                    ],
                    "properties": {
                        "platform": platform.platform,
                        "image": report.reference,
                        "imageDigest": report.digest,
                        "fixedVersion": finding.fixed_version,
                        "fixStatus": str(finding.fix_status),
                        "layerDigest": finding.layer_digest,
                    },
                }
            )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "informationUri": TOOL_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def _sarif_rule(finding: Finding) -> dict[str, Any]:
    score = finding.cvss[0].base_score if finding.cvss else _BAND_SCORE[finding.severity]
    rule: dict[str, Any] = {
        "id": finding.id,
        "shortDescription": {"text": finding.summary or finding.id},
        "fullDescription": {"text": finding.description or finding.summary or finding.id},
        "properties": {
            "security-severity": f"{score:.1f}",
            "tags": ["vulnerability", "security", finding.severity.value],
        },
    }
    if finding.references:
        rule["helpUri"] = finding.references[0]
    return rule


# --- CycloneDX 1.5 --------------------------------------------------------------------------

_CDX_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.NEGLIGIBLE: "info",
    Severity.UNKNOWN: "unknown",
}
_CDX_METHOD = {"2.0": "CVSSv2", "3.0": "CVSSv3", "3.1": "CVSSv31", "4.0": "CVSSv4"}


def report_to_cyclonedx(report: ScanReport, *, timestamp: str) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM; ``serialNumber`` is derived from the digest so it is stable."""
    components: list[dict[str, Any]] = []
    vulnerabilities: dict[str, dict[str, Any]] = {}
    for platform in report.platforms:
        refs: dict[tuple[str, str, str], str] = {}
        for item in platform.packages:
            package = item.package
            ref = _bom_ref(platform.platform, package)
            refs[(package.name, package.version, package.path)] = ref
            component: dict[str, Any] = {
                "type": "library",
                "bom-ref": ref,
                "name": package.name,
                "version": package.version,
            }
            if package.purl:
                component["purl"] = package.purl
            components.append(component)
        for finding in platform.findings:
            ref = refs.get(
                (finding.package, finding.installed_version, finding.path),
                f"{platform.platform}|{finding.purl or finding.package}",
            )
            vulnerability = vulnerabilities.get(finding.id)
            if vulnerability is None:
                vulnerability = _cdx_vulnerability(finding)
                vulnerabilities[finding.id] = vulnerability
            vulnerability["affects"].append(
                {
                    "ref": ref,
                    "versions": [{"version": finding.installed_version, "status": "affected"}],
                }
            )
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"{report.reference}@{report.digest}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": TOOL_NAME}]},
            "component": {
                "type": "container",
                "bom-ref": report.digest or report.reference,
                "name": report.reference,
                "version": report.digest,
            },
        },
        "components": components,
        "vulnerabilities": list(vulnerabilities.values()),
    }


def _bom_ref(platform: str, package: Package) -> str:
    return f"{platform}|{package.purl or package.name + '@' + package.version}|{package.path}"


def _cdx_vulnerability(finding: Finding) -> dict[str, Any]:
    ratings: list[dict[str, Any]] = [
        {
            "score": score.base_score,
            "severity": _CDX_SEVERITY[score.severity],
            "method": _CDX_METHOD.get(score.version, "other"),
            "vector": score.vector,
        }
        for score in finding.cvss
    ]
    if finding.vendor_severity:
        ratings.insert(0, {"severity": _CDX_SEVERITY[finding.severity], "method": "other"})
    if not ratings:
        ratings.append({"severity": _CDX_SEVERITY[finding.severity], "method": "other"})
    vulnerability: dict[str, Any] = {
        "id": finding.id,
        "ratings": ratings,
        "description": finding.summary or finding.description,
        "recommendation": finding.remediation,
        "affects": [],
    }
    if finding.aliases:
        vulnerability["references"] = [
            {"id": alias, "source": {"name": "NVD" if alias.startswith("CVE-") else "OSV"}}
            for alias in finding.aliases
        ]
    if finding.references:
        vulnerability["advisories"] = [{"url": url} for url in finding.references]
    if finding.published:
        vulnerability["published"] = finding.published
    if finding.modified:
        vulnerability["updated"] = finding.modified
    return vulnerability


def render_sarif(report: ScanReport) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"


def render_cyclonedx(report: ScanReport, *, timestamp: str) -> str:
    return (
        json.dumps(report_to_cyclonedx(report, timestamp=timestamp), indent=2,
                   ensure_ascii=False) + "\n"
    )


def report_packages(
    packages: Sequence[Package], ecosystem_of: dict[PackageType, str]
) -> tuple[ReportPackage, ...]:
    """Pair each package with the ecosystem it is looked up in (``ecosystem_of`` by type)."""
    return tuple(
        ReportPackage(package=p, ecosystem=ecosystem_of.get(p.type, str(p.type))) for p in packages
    )
