"""Findings shaped like Defender's container-registry sub-assessments.

Consumers of Microsoft Defender for container registries read
``microsoft.security/assessments/subassessments`` objects whose ``additionalData`` has
``assessedResourceType: "AzureContainerRegistryVulnerability"`` (the MDVM format documented on
Microsoft Learn, "Container vulnerability assessments REST API"). We emit the same field names so
existing dashboards and scripts can switch by changing the URL they call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from scanning.model import Finding, FixStatus, OSInfo, PackageType, Severity

# The assessment key Defender used for MDVM-powered registry vulnerability assessments.
ASSESSMENT_KEY = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"

# Defender's fixStatus vocabulary: Unknown, FixAvailable, NoFixAvailable, Scheduled, WontFix.
_FIX_STATUS = {
    FixStatus.FIXED: "FixAvailable",
    FixStatus.NOT_FIXED: "NoFixAvailable",
    FixStatus.WONT_FIX: "WontFix",
    FixStatus.UNIMPORTANT: "WontFix",
    FixStatus.END_OF_LIFE: "NoFixAvailable",
    FixStatus.UNKNOWN: "Unknown",
}
_LANGUAGE = {
    PackageType.PYPI: "python",
    PackageType.NPM: "javascript",
    PackageType.GOLANG: "go",
    PackageType.MAVEN: "java",
    PackageType.NUGET: "dotnet",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SubAssessmentImage:
    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    last_pushed: str
    os: OSInfo | None
    platform: str
    time_generated: str
    # Why the platform's read was partial (entries skipped, files unread), when it was: the
    # status description of its findings says so, since they may not be all there are.
    partial_note: str = ""


def defender_severity(severity: Severity) -> str:
    """Defender has Low/Medium/High/Critical; negligible and unknown fold into Low."""
    if severity in (Severity.UNKNOWN, Severity.NEGLIGIBLE):
        return "Low"
    return severity.value.capitalize()


def resource_id(image: SubAssessmentImage) -> str:
    return f"/repositories/{image.repository}/images/{image.digest}"


def sub_assessment_id(image: SubAssessmentImage, finding: Finding) -> str:
    """Stable per (image, platform, advisory, package): the same finding keeps its id."""
    key = "|".join((image.registry, image.digest, image.platform, finding.id, finding.package,
                    finding.installed_version))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _cve_id(finding: Finding) -> str:
    for name in (finding.id, *finding.aliases):
        if name.startswith("CVE-"):
            return name
    return finding.id


def _os_details(os_info: OSInfo | None) -> dict[str, str]:
    if os_info is None:
        return {"osPlatform": "linux", "osName": "", "osVersion": ""}
    return {"osPlatform": "linux", "osName": os_info.id, "osVersion": os_info.version_id}


def to_sub_assessment(image: SubAssessmentImage, finding: Finding) -> dict[str, Any]:
    cvss = {
        score.version: {"cvssVectorString": score.vector, "base": score.base_score}
        for score in finding.cvss
    }
    v3_scores = [score.base_score for score in finding.cvss if score.version.startswith("3")]
    severity = defender_severity(finding.severity)
    status: dict[str, str | None]
    if finding.disabled_by:
        status = {"code": "NotApplicable", "severity": severity, "cause": "Exempt",
                  "description": f"Disabled by rule {finding.disabled_by}"}
    else:
        status = {"code": "Unhealthy", "severity": severity, "cause": None,
                  "description": image.partial_note}
    category = "OS" if finding.package_type.is_os else "Language"
    identifier = sub_assessment_id(image, finding)
    return {
        "id": f"{resource_id(image)}/subAssessments/{identifier}",
        "name": identifier,
        "type": "microsoft.security/assessments/subassessments",
        "properties": {
            "id": _cve_id(finding),
            "displayName": _cve_id(finding),
            "status": status,
            "remediation": finding.remediation,
            "description": finding.summary or finding.description,
            "timeGenerated": image.time_generated,
            "resourceDetails": {"source": "Azure", "id": resource_id(image)},
            "additionalData": {
                "assessedResourceType": "AzureContainerRegistryVulnerability",
                "cvssV30Score": max(v3_scores) if v3_scores else None,
                "vulnerabilityDetails": {
                    "cveId": _cve_id(finding),
                    "advisoryId": finding.id,
                    "aliases": list(finding.aliases),
                    "severity": severity,
                    "vendorSeverity": finding.vendor_severity,
                    "cvss": cvss,
                    "publishedDate": finding.published,
                    "lastModifiedDate": finding.modified,
                    "references": [{"title": url, "link": url} for url in finding.references],
                    "workarounds": [],
                },
                "artifactDetails": {
                    "registryHost": image.registry,
                    "repositoryName": image.repository,
                    "digest": image.digest,
                    "tags": list(image.tags),
                    "artifactType": "ContainerImage",
                    "mediaType": image.media_type,
                    "lastPushedToRegistryUTC": image.last_pushed,
                    "platform": image.platform,
                },
                "softwareDetails": {
                    "category": category,
                    "language": _LANGUAGE.get(finding.package_type, ""),
                    "packageName": finding.package,
                    "packageType": finding.package_type.value,
                    "purl": finding.purl,
                    "sourcePackage": finding.source_package,
                    "version": finding.installed_version,
                    "fixedVersion": finding.fixed_version,
                    "fixStatus": _FIX_STATUS[finding.fix_status],
                    "fixStatusDetail": finding.fix_status.value,
                    "osDetails": _os_details(image.os),
                    "evidence": [finding.path] if finding.path else [],
                    "layerDigest": finding.layer_digest,
                    "layerInstruction": finding.layer_instruction,
                },
            },
        },
    }
