"""Defender's two sub-assessment shapes, ARM ids, fixStatus vocabulary and the Easy Auth
principal, without storage."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace

import pytest

from scanning.defender import (
    LOCAL_RESOURCE_ID,
    MDVM_KEY,
    RETIRED_KEY,
    RegistryIds,
    defender_cvss,
    fix_statuses,
    image_status_sub_assessment,
    mdvm_sub_assessment,
    retired_sub_assessment,
    status_severity,
)
from scanning.defender_api import arm_next_link
from scanning.errors import ConfigError
from scanning.model import AssessmentStatus, CvssScore, FixStatus, Severity
from scanning.principal import principal_id
from tests.test_subassessments import IMAGE, finding

REGISTRY_ID = ("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg"
               "/providers/Microsoft.ContainerRegistry/registries/contoso")
DIGEST = "sha256:" + "ab" * 32
IMAGE_ID = f"{REGISTRY_ID}/repositories/team/api/images/{DIGEST}"


def test_mdvm_id_is_the_full_arm_id_with_the_key_and_a_uuid_name() -> None:
    result = mdvm_sub_assessment(REGISTRY_ID, IMAGE, finding())
    name = result["name"]
    assert (uuid.UUID(name).version, result["id"], result["type"]) == (
        5, f"{REGISTRY_ID}/providers/Microsoft.Security/assessments/{MDVM_KEY}"
           f"/subAssessments/{name}", "Microsoft.Security/assessments/subAssessments")


def test_name_is_the_same_for_the_same_finding_and_differs_by_key() -> None:
    assert (mdvm_sub_assessment(REGISTRY_ID, IMAGE, finding())["name"]
            == mdvm_sub_assessment(REGISTRY_ID, IMAGE, finding())["name"]
            != retired_sub_assessment(REGISTRY_ID, IMAGE, finding())["name"])


def test_mdvm_adds_the_missing_fields_and_defender_os_version() -> None:
    properties = mdvm_sub_assessment(REGISTRY_ID, IMAGE, finding())["properties"]
    details = properties["additionalData"]["vulnerabilityDetails"]
    software = properties["additionalData"]["softwareDetails"]
    assert (properties["resourceDetails"], details["cvss"], details["weaknesses"],
            details["cpe"], details["exploitabilityAssessment"], details["fixReference"],
            software["osDetails"], software["vendor"]) == (
        {"source": "Azure", "id": IMAGE_ID, "resourceType": "repositories/images",
         "resourceName": f"team/api@{DIGEST}", "resourceProvider": "acr"},
        {"3.0": {"base": 7.5, "cvssVectorString":
                 "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}},
        {"cwe": []}, None,
        {"exploitStepsVerified": None, "exploitStepsPublished": None, "isInExploitKit": None,
         "types": [], "exploitUris": []},
        {"id": "DSA-5532-1", "url": "https://www.debian.org/security/dsa-5532",
         "description": "Upgrade openssl to 3.0.11-1~deb12u2 (fixed in Debian 12)",
         "releaseDate": None},
        {"osPlatform": "linux", "osName": "debian", "osVersion": "debian_12"}, "debian")


def test_retired_shape_has_the_container_registry_vulnerability_fields() -> None:
    properties = retired_sub_assessment(REGISTRY_ID, IMAGE, finding())["properties"]
    assert properties["additionalData"] == {
        "assessedResourceType": "ContainerRegistryVulnerability", "type": "Vulnerability",
        "cvss": {"3.0": {"base": 7.5}}, "patchable": True,
        "cve": [{"title": "CVE-2023-5363",
                 "link": "https://nvd.nist.gov/vuln/detail/CVE-2023-5363"}],
        "vendorReferences": [{"title": "https://www.debian.org/security/dsa-5532",
                              "link": "https://www.debian.org/security/dsa-5532"}],
        "publishedTime": "2023-10-24T00:00:00Z", "imageDigest": DIGEST,
        "repositoryName": "team/api"}


@pytest.mark.parametrize(("severity", "expected"), [
    (Severity.CRITICAL, "High"), (Severity.HIGH, "High"), (Severity.MEDIUM, "Medium"),
    (Severity.LOW, "Low"), (Severity.NEGLIGIBLE, "Low"), (Severity.UNKNOWN, "Low")])
def test_status_severity_is_in_the_specs_enum(severity: Severity, expected: str) -> None:
    assert status_severity(severity) == expected


def test_critical_stays_critical_in_vulnerability_details_only() -> None:
    critical = replace(finding(), severity=Severity.CRITICAL)
    properties = mdvm_sub_assessment(REGISTRY_ID, IMAGE, critical)["properties"]
    assert (properties["status"]["severity"],
            properties["additionalData"]["vulnerabilityDetails"]["severity"]) == (
        "High", "Critical")


def test_cvss_is_keyed_3_0_and_2_0_the_latest_3x_winning_and_v4_left_out() -> None:
    scores = tuple(CvssScore(version=version, vector=f"v{version}", base_score=score,
                             severity=Severity.HIGH)
                   for version, score in (("3.1", 8.1), ("2.0", 6.4), ("3.0", 7.0),
                                          ("4.0", 9.0)))
    assert defender_cvss(scores) == {"3.0": {"base": 8.1, "cvssVectorString": "v3.1"},
                                     "2.0": {"base": 6.4, "cvssVectorString": "v2.0"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("FixAvailable", {FixStatus.FIXED}),
    ("NoFixAvailable", {FixStatus.NOT_FIXED, FixStatus.END_OF_LIFE}),
    ("wontfix", {FixStatus.WONT_FIX, FixStatus.UNIMPORTANT}),
    ("Scheduled", set()),
    ("not_fixed", {FixStatus.NOT_FIXED}),
])
def test_fix_status_accepts_both_vocabularies(text: str, expected: set[FixStatus]) -> None:
    assert fix_statuses(text) == expected


def test_healthy_image_gives_one_healthy_entry_with_a_time() -> None:
    entry = image_status_sub_assessment(MDVM_KEY, REGISTRY_ID, IMAGE, AssessmentStatus.HEALTHY,
                                        "")
    assert (entry["properties"]["status"], entry["properties"]["timeGenerated"]) == (
        {"code": "Healthy", "severity": "Low", "cause": None, "description": ""},
        "2026-11-21T10:00:00Z")


def test_unsupported_image_is_not_applicable_never_healthy() -> None:
    entry = image_status_sub_assessment(RETIRED_KEY, REGISTRY_ID, IMAGE,
                                        AssessmentStatus.UNSUPPORTED, "no package database")
    assert entry["properties"]["status"] == {
        "code": "NotApplicable", "severity": "Low", "cause": "unsupported",
        "description": "no package database"}


def test_registry_ids_without_the_setting_put_every_registry_at_the_local_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_RESOURCE_IDS", raising=False)
    ids = RegistryIds.from_settings()
    assert (ids.resource_id("anything:5000"), ids.login_servers(LOCAL_RESOURCE_ID.upper()),
            ids.login_servers(REGISTRY_ID)) == (LOCAL_RESOURCE_ID, None, ())


def test_registry_ids_map_login_servers_case_blind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_RESOURCE_IDS", json.dumps({"Contoso.azurecr.io": REGISTRY_ID}))
    ids = RegistryIds.from_settings()
    assert (ids.resource_id("contoso.azurecr.io"), ids.resource_id("other.azurecr.io"),
            ids.login_servers(REGISTRY_ID.lower()),
            ids.in_subscription("contoso.azurecr.io", "11111111-1111-1111-1111-111111111111"),
            ids.in_subscription("contoso.azurecr.io", "22222222-2222-2222-2222-222222222222")
            ) == (REGISTRY_ID, None, ("contoso.azurecr.io",), True, False)


@pytest.mark.parametrize("value", ["[1]", "{not json", '{"a.azurecr.io": "relative"}'])
def test_malformed_registry_ids_setting_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REGISTRY_RESOURCE_IDS", value)
    with pytest.raises(ConfigError):
        RegistryIds.from_settings()


def test_next_link_keeps_code_and_api_version() -> None:
    assert arm_next_link("http://h/api/x?api-version=2019-01-01-preview&code=k&"
                         "continuationToken=old", "new") == (
        "http://h/api/x?api-version=2019-01-01-preview&code=k&continuationToken=new")


def test_last_page_has_no_next_link() -> None:
    assert arm_next_link("http://h/api/x?code=k", None) is None


def _principal(data: object) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(data).encode()).decode()}


def test_easy_auth_principal_names_the_callers_object_id() -> None:
    assert principal_id(_principal({"auth_typ": "aad", "claims": [
        {"typ": "aud", "val": "api://acr-scan"},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
         "val": "5f0c1b7e-0000-4000-8000-000000000001"}]})) == (
        "5f0c1b7e-0000-4000-8000-000000000001")


@pytest.mark.parametrize("headers", [
    {},
    {"X-MS-CLIENT-PRINCIPAL": "not base64!"},
    _principal({"auth_typ": "facebook", "claims": [{"typ": "oid", "val": "x"}]}),
    _principal({"auth_typ": "aad", "claims": [{"typ": "aud", "val": "x"}]}),
    _principal(["aad"]),
])
def test_missing_or_foreign_principal_is_none(headers: dict[str, str]) -> None:
    assert principal_id(headers) is None
