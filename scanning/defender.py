"""Sub-assessments in the two shapes Defender for container registries served, with ARM ids.

Defender clients (``azure-mgmt-security``'s ``SecurityCenter``, Azure Resource Graph queries
and gate scripts) read ``Microsoft.Security/assessments/{key}/subAssessments`` under the
registry's ARM resource id. The assessment key picks the shape:

- ``MDVM_KEY``: the MDVM format, ``additionalData.assessedResourceType`` =
  ``AzureContainerRegistryVulnerability`` with artifact, software and vulnerability details
  (built on ``scanning.subassessments``, which ``/api/findings`` serves);
- ``RETIRED_KEY``: the retired Qualys-powered plan's ``ContainerRegistryVulnerability``
  (type, cvss, patchable, cve, vendorReferences, publishedTime, imageDigest, repositoryName),
  the fields the 2019-01-01-preview REST spec and the SDK's models describe.

A registry maps to its ARM id through ``REGISTRY_RESOURCE_IDS`` (JSON: login server -> id,
set by Bicep); without it every registry is the local one, ``LOCAL_RESOURCE_ID``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scanning.assessment import Verdict
from scanning.config import setting
from scanning.errors import ConfigError
from scanning.model import AssessmentStatus, CvssScore, Finding, FixStatus, OSInfo, Severity
from scanning.store import ImageRecord
from scanning.subassessments import SubAssessmentImage, to_sub_assessment

MDVM_KEY = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"
RETIRED_KEY = "dbd0cb49-b563-45e7-9724-889e799fa648"
ASSESSMENT_KEYS = (MDVM_KEY, RETIRED_KEY)
DISPLAY_NAMES = {
    MDVM_KEY: "Azure registry container images should have vulnerabilities resolved "
              "(powered by Microsoft Defender Vulnerability Management)",
    RETIRED_KEY: "Container registry images should have vulnerability findings resolved",
}
LOCAL_RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
                     "/providers/Microsoft.ContainerRegistry/registries/local")
SUB_ASSESSMENT_TYPE = "Microsoft.Security/assessments/subAssessments"
ASSESSMENT_TYPE = "Microsoft.Security/assessments"
# Names are UUIDv5 in this namespace over the finding's identity: the same finding, same name.
_NAMESPACE = uuid.UUID("6f1c2a9e-4d0b-5e7a-9c3f-acd5ca11ab1e")

# Defender's fixStatus names and the acr-scan statuses each stands for; acr-scan's own names
# are accepted too, as ``/api/findings`` takes them.
DEFENDER_FIX_STATUS: dict[str, frozenset[FixStatus]] = {
    "fixavailable": frozenset({FixStatus.FIXED}),
    "nofixavailable": frozenset({FixStatus.NOT_FIXED, FixStatus.END_OF_LIFE}),
    "wontfix": frozenset({FixStatus.WONT_FIX, FixStatus.UNIMPORTANT}),
    "scheduled": frozenset(),
    "unknown": frozenset({FixStatus.UNKNOWN}),
}


def fix_statuses(text: str) -> frozenset[FixStatus]:
    """The acr-scan fix statuses a ``fixStatus`` value names, in either vocabulary."""
    lowered = text.lower()
    if lowered in DEFENDER_FIX_STATUS:
        return DEFENDER_FIX_STATUS[lowered]
    return frozenset({FixStatus(lowered)})  # ValueError for anything else


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryIds:
    """Login server -> ARM resource id; empty means one local registry holding everything."""

    by_login: Mapping[str, str]

    @classmethod
    def from_settings(cls) -> RegistryIds:
        raw = setting("REGISTRY_RESOURCE_IDS").strip()
        if not raw:
            return cls(by_login={})
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigError(f"REGISTRY_RESOURCE_IDS is not JSON: {error}") from error
        if not isinstance(data, dict) or not all(
                isinstance(key, str) and isinstance(value, str) and value.startswith("/")
                for key, value in data.items()):
            raise ConfigError("REGISTRY_RESOURCE_IDS must be a JSON object of login server "
                              "-> resource id")
        return cls(by_login={key.lower(): value for key, value in data.items()})

    def resource_id(self, registry: str) -> str | None:
        """The registry's ARM id; None for a registry the setting leaves out."""
        if not self.by_login:
            return LOCAL_RESOURCE_ID
        return self.by_login.get(registry.lower())

    def login_servers(self, resource_id: str) -> tuple[str, ...] | None:
        """The registries with that ARM id (ARM ids compare case-blind); None means all."""
        if not self.by_login:
            return None if resource_id.lower() == LOCAL_RESOURCE_ID.lower() else ()
        return tuple(sorted(login for login, known in self.by_login.items()
                            if known.lower() == resource_id.lower()))

    def in_subscription(self, registry: str, subscription: str) -> bool:
        known = self.resource_id(registry)
        return known is not None and known.lower().startswith(
            f"/subscriptions/{subscription.lower()}/")


def registry_resource_id(subscription: str, group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{name}")


def assessment_id(registry_id: str, key: str) -> str:
    return f"{registry_id}/providers/Microsoft.Security/assessments/{key}"


def image_resource_id(registry_id: str, image: SubAssessmentImage) -> str:
    return f"{registry_id}/repositories/{image.repository}/images/{image.digest}"


def sub_assessment_name(key: str, image: SubAssessmentImage, finding: Finding | None) -> str:
    parts = [key, image.registry, image.repository, image.digest, image.platform]
    if finding is not None:
        parts += [finding.id, finding.package, finding.installed_version]
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def status_severity(severity: Severity) -> str:
    """The spec's status severity enum is Low/Medium/High: Critical counts as High."""
    if severity is Severity.CRITICAL:
        return "High"
    if severity in (Severity.UNKNOWN, Severity.NEGLIGIBLE):
        return "Low"
    return severity.value.capitalize()


def defender_cvss(scores: tuple[CvssScore, ...]) -> dict[str, dict[str, Any]]:
    """CVSS keyed as Defender keys it, "3.0" (any 3.x, the latest) and "2.0"; v4 has no key."""
    keyed: dict[str, CvssScore] = {}
    for score in sorted(scores, key=lambda score: score.version):
        if score.version.startswith("3"):
            keyed["3.0"] = score
        elif score.version.startswith("2"):
            keyed["2.0"] = score
    return {key: {"base": score.base_score, "cvssVectorString": score.vector}
            for key, score in sorted(keyed.items(), reverse=True)}


def _envelope(key: str, registry_id: str, image: SubAssessmentImage,
              finding: Finding | None) -> dict[str, Any]:
    name = sub_assessment_name(key, image, finding)
    return {"id": f"{assessment_id(registry_id, key)}/subAssessments/{name}", "name": name,
            "type": SUB_ASSESSMENT_TYPE}


def mdvm_sub_assessment(registry_id: str, image: SubAssessmentImage,
                        finding: Finding) -> dict[str, Any]:
    body = to_sub_assessment(image, finding)
    properties = body["properties"]
    properties["status"]["severity"] = status_severity(finding.severity)
    properties["category"] = "OS" if finding.package_type.is_os else "Language"
    properties["impact"] = finding.summary
    properties["resourceDetails"] = {"source": "Azure",
                                     "id": image_resource_id(registry_id, image),
                                     "resourceType": "repositories/images",
                                     "resourceName": f"{image.repository}@{image.digest}",
                                     "resourceProvider": "acr"}
    data = properties["additionalData"]
    details = data["vulnerabilityDetails"]
    details["cvss"] = defender_cvss(finding.cvss)
    details["cpe"] = None  # advisories give package URLs, not CPEs
    details["weaknesses"] = {"cwe": []}  # the advisory sources read carry no CWE ids
    # Not known: null, never a reassuring false.
    details["exploitabilityAssessment"] = {"exploitStepsVerified": None,
                                           "exploitStepsPublished": None,
                                           "isInExploitKit": None, "types": [],
                                           "exploitUris": []}
    details["fixReference"] = ({"id": finding.id, "url": finding.references[0],
                                "description": finding.remediation, "releaseDate": None}
                               if finding.fixed_version and finding.references else None)
    software = data["softwareDetails"]
    os_details = software["osDetails"]
    if os_details["osName"]:
        os_details["osVersion"] = f"{os_details['osName']}_{os_details['osVersion']}"
    software["vendor"] = os_details["osName"] if finding.package_type.is_os else ""
    return {**_envelope(MDVM_KEY, registry_id, image, finding), "properties": properties}


def _iso_time(text: str) -> str | None:
    """An ISO 8601 time, or None: one unparsable time would fail the SDK's whole page."""
    try:
        return datetime.fromisoformat(text).isoformat().replace("+00:00", "Z") if text else None
    except ValueError:
        return None


def retired_sub_assessment(registry_id: str, image: SubAssessmentImage,
                           finding: Finding) -> dict[str, Any]:
    mdvm = mdvm_sub_assessment(registry_id, image, finding)
    properties = mdvm["properties"]
    cves = [name for name in (finding.id, *finding.aliases) if name.startswith("CVE-")]
    properties["additionalData"] = {
        "assessedResourceType": "ContainerRegistryVulnerability",
        "type": "Vulnerability",
        "cvss": {key: {"base": value["base"]}
                 for key, value in defender_cvss(finding.cvss).items()},
        "patchable": finding.fix_status is FixStatus.FIXED,
        "cve": [{"title": name, "link": f"https://nvd.nist.gov/vuln/detail/{name}"}
                for name in cves],
        "vendorReferences": [{"title": url, "link": url} for url in finding.references],
        "publishedTime": _iso_time(finding.published),
        "imageDigest": image.digest,
        "repositoryName": image.repository,
    }
    return {**_envelope(RETIRED_KEY, registry_id, image, finding), "properties": properties}


def sub_assessment(key: str, registry_id: str, image: SubAssessmentImage,
                   finding: Finding) -> dict[str, Any]:
    if key == MDVM_KEY:
        return mdvm_sub_assessment(registry_id, image, finding)
    return retired_sub_assessment(registry_id, image, finding)


def image_status_sub_assessment(key: str, registry_id: str, image: SubAssessmentImage,
                                status: AssessmentStatus, reason: str) -> dict[str, Any]:
    """The one entry of an image without findings: Healthy only when its verdict is healthy
    (every layer read); unsupported, failed or partial images are NotApplicable."""
    healthy = status is AssessmentStatus.HEALTHY
    code = "Healthy" if healthy else "NotApplicable"
    additional: dict[str, Any]
    if key == MDVM_KEY:
        additional = {"assessedResourceType": "AzureContainerRegistryVulnerability",
                      "artifactDetails": {"registryHost": image.registry,
                                          "repositoryName": image.repository,
                                          "digest": image.digest, "tags": list(image.tags),
                                          "artifactType": "ContainerImage",
                                          "mediaType": image.media_type,
                                          "lastPushedToRegistryUTC": image.last_pushed,
                                          "platform": image.platform}}
    else:
        additional = {"assessedResourceType": "ContainerRegistryVulnerability",
                      "imageDigest": image.digest, "repositoryName": image.repository,
                      "cvss": {}, "cve": [], "vendorReferences": []}
    return {**_envelope(key, registry_id, image, None), "properties": {
        "id": "", "displayName": "No vulnerabilities found" if healthy else "Not assessed",
        "status": {"code": code, "severity": "Low", "cause": None if healthy else status.value,
                   "description": reason},
        "remediation": "", "description": reason, "timeGenerated": image.time_generated,
        "resourceDetails": {"source": "Azure", "id": image_resource_id(registry_id, image)},
        "additionalData": additional,
    }}


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """``digest``, ``repository``, ``severity`` (at or above, either vocabulary), ``fixStatus``
    (either vocabulary), ``cve``, ``statusCode`` and ``timeGeneratedSince``."""

    digest: str = ""
    repository: str = ""
    severity: Severity | None = None
    fix_status: frozenset[FixStatus] | None = None
    cve: str = ""
    status_code: str = ""
    since: datetime | None = None

    def keeps_image(self, image: ImageRecord) -> bool:
        if self.repository and image.repository != self.repository:
            return False
        if self.since is not None:
            return image.assessed_at is not None and as_utc(image.assessed_at) >= self.since
        return True

    def keeps_finding(self, finding: Finding) -> bool:
        code = "notapplicable" if finding.disabled_by else "unhealthy"
        return ((self.severity is None or finding.severity.rank >= self.severity.rank)
                and (self.fix_status is None or finding.fix_status in self.fix_status)
                and (not self.cve or self.cve in (finding.id, *finding.aliases))
                and (not self.status_code or self.status_code == code))

    @property
    def on_findings(self) -> bool:
        """Filters only findings satisfy: an image without one has no entry then."""
        return bool(self.severity or self.fix_status is not None or self.cve)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment_text(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def image_context(image: ImageRecord, platform: str, now: datetime,
                  os_info: OSInfo | None = None) -> SubAssessmentImage:
    """What a sub-assessment says of ``image``; ``timeGenerated`` is the assessment's time, or
    ``now`` for an image never assessed (the SDK rejects a page with an empty one)."""
    return SubAssessmentImage(
        registry=image.registry, repository=image.repository, digest=image.digest,
        tags=image.tags, media_type=image.media_type,
        last_pushed=_moment_text(image.last_pushed) if image.last_pushed else "", os=os_info,
        platform=platform, time_generated=_moment_text(image.assessed_at or now))


def verdict_sub_assessments(key: str, registry_id: str, image: ImageRecord,
                            verdict: Verdict | None, filters: Filters,
                            now: datetime) -> Iterator[dict[str, Any]]:
    """The sub-assessments of ``image`` with ``verdict`` (None: never assessed), filtered."""
    platforms = verdict.platforms if verdict is not None else ()
    oses = {detail.platform: detail.os for detail in image.platform_details}
    if any(result.findings for result in platforms):
        for result in platforms:
            context = image_context(image, result.platform, now,
                               result.os or oses.get(result.platform))
            for finding in sorted(result.findings, key=_order):
                if filters.keeps_finding(finding):
                    yield sub_assessment(key, registry_id, context, finding)
        return
    status = verdict.status if verdict is not None else AssessmentStatus.NOT_APPLICABLE
    reason = (verdict.reason or image.reason) if verdict is not None else "not assessed yet"
    code = "healthy" if status is AssessmentStatus.HEALTHY else "notapplicable"
    if filters.on_findings or (filters.status_code and filters.status_code != code):
        return
    yield image_status_sub_assessment(key, registry_id, image_context(image, "", now), status,
                                      reason)


def _order(finding: Finding) -> tuple[int, str, str, str]:
    return (-finding.severity.rank, finding.id, finding.package, finding.installed_version)
