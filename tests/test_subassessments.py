from __future__ import annotations

from scanning.model import (
    CvssScore,
    Finding,
    FixStatus,
    MatchDetail,
    OSInfo,
    PackageType,
    Severity,
)
from scanning.subassessments import SubAssessmentImage, to_sub_assessment

IMAGE = SubAssessmentImage(
    registry="contoso.azurecr.io", repository="team/api", digest="sha256:" + "ab" * 32,
    tags=("1.0",), media_type="application/vnd.oci.image.manifest.v1+json",
    last_pushed="2026-11-20T10:00:00Z", os=OSInfo(id="debian", version_id="12"),
    platform="linux/amd64", time_generated="2026-11-21T10:00:00Z",
)


def finding(*, disabled_by: str = "") -> Finding:
    return Finding(
        id="DSA-5532-1", aliases=("CVE-2023-5363",), package="libssl3",
        installed_version="3.0.11-1~deb12u1", package_type=PackageType.DPKG,
        purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12", source_package="openssl",
        fixed_version="3.0.11-1~deb12u2", fix_status=FixStatus.FIXED, severity=Severity.HIGH,
        vendor_severity="high",
        cvss=(CvssScore(version="3.1", vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                        base_score=7.5, severity=Severity.HIGH),),
        remediation="Upgrade openssl to 3.0.11-1~deb12u2 (fixed in Debian 12)",
        summary="openssl security update", description="", published="2023-10-24T00:00:00Z",
        modified="2023-10-25T00:00:00Z", references=("https://www.debian.org/security/dsa-5532",),
        layer_digest="sha256:" + "cd" * 32, layer_instruction="RUN apt-get install libssl3",
        path="var/lib/dpkg/status",
        match=MatchDetail(ecosystem="Debian:12", searched_name="openssl",
                          searched_version="3.0.11-1~deb12u1", range="introduced 0, fixed x"),
        disabled_by=disabled_by,
    )


def test_active_finding_is_an_unhealthy_sub_assessment() -> None:
    result = to_sub_assessment(IMAGE, finding())
    properties = result["properties"]
    assert (properties["id"], properties["displayName"], properties["status"]) == (
        "CVE-2023-5363", "CVE-2023-5363",
        {"code": "Unhealthy", "severity": "High", "cause": None, "description": ""})
    assert properties["resourceDetails"] == {
        "source": "Azure", "id": "/repositories/team/api/images/sha256:" + "ab" * 32}
    additional = properties["additionalData"]
    assert additional["assessedResourceType"] == "AzureContainerRegistryVulnerability"
    assert additional["cvssV30Score"] == 7.5
    assert additional["vulnerabilityDetails"]["cvss"] == {
        "3.1": {"cvssVectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "base": 7.5}}
    assert additional["artifactDetails"] == {
        "registryHost": "contoso.azurecr.io", "repositoryName": "team/api",
        "digest": "sha256:" + "ab" * 32, "tags": ["1.0"], "artifactType": "ContainerImage",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "lastPushedToRegistryUTC": "2026-11-20T10:00:00Z", "platform": "linux/amd64"}
    software = additional["softwareDetails"]
    assert (software["category"], software["packageName"], software["version"],
            software["fixedVersion"], software["fixStatus"], software["osDetails"]) == (
        "OS", "libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "FixAvailable",
        {"osPlatform": "linux", "osName": "debian", "osVersion": "12"})


def test_disabled_finding_is_not_applicable_and_names_the_rule() -> None:
    status = to_sub_assessment(IMAGE, finding(disabled_by="rule-7"))["properties"]["status"]
    assert status == {"code": "NotApplicable", "severity": "High", "cause": "Exempt",
                      "description": "Disabled by rule rule-7"}


def test_sub_assessment_id_is_stable_across_calls() -> None:
    assert to_sub_assessment(IMAGE, finding())["name"] == to_sub_assessment(
        IMAGE, finding(disabled_by="x"))["name"]
