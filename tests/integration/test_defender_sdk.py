"""Defender's own client, ``azure-mgmt-security``'s ``SecurityCenter``, reads acr-scan's
Defender-shaped routes on the local host: a pushed image's sub-assessments under both
assessment keys, one by one, across the subscription, filtered, and the registry's parent
assessment. The base advisories give the image musl (critical, fixed) and libcrypto3 and
libssl3 (medium, no fix)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.security import SecurityCenter

from scanning.defender import LOCAL_RESOURCE_ID, MDVM_KEY, RETIRED_KEY
from tests.integration.helpers import FUNCTION_KEY, App, push_and_scan

pytestmark = pytest.mark.integration

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
MUSL_FIX = "Upgrade musl from 1.2.4-r1 to 1.2.4-r2 (fixed in Alpine 3.18)"


class FunctionKeyPolicy(SansIOHTTPPolicy[Any, Any]):
    """Stands in for the Entra token policy locally: the function key in its header."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.http_request.headers["x-functions-key"] = FUNCTION_KEY


class UnusedCredential:
    """The client requires a credential; the key policy replaces the token policy using it."""

    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        raise AssertionError("the function key policy authenticates; no token is asked for")


def client(app: App) -> SecurityCenter:
    return SecurityCenter(credential=UnusedCredential(), subscription_id=SUBSCRIPTION,
                          base_url=f"{app.host.base_url}/api",
                          authentication_policy=FunctionKeyPolicy())


def image_id(repository: str, digest: str) -> str:
    return f"{LOCAL_RESOURCE_ID}/repositories/{repository}/images/{digest}"


def key_of(resource_id: str) -> str:
    """The assessment key as Defender's ARG queries take it from a sub-assessment id."""
    return resource_id.split("/assessments/", 1)[1].split("/", 1)[0]


def test_mdvm_sub_assessments_deserialize_with_every_field(app: App, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "mdvm")
    items = [item.as_dict() for item in client(app).sub_assessments.list(LOCAL_RESOURCE_ID,
                                                                          MDVM_KEY)]
    musl = items[0]
    name = musl.pop("name")
    generated = musl.pop("time_generated")
    assert (uuid.UUID(name).version, generated.endswith("Z"), musl) == (5, True, {
        "id": f"{LOCAL_RESOURCE_ID}/providers/Microsoft.Security/assessments/{MDVM_KEY}"
              f"/subAssessments/{name}",
        "type": "Microsoft.Security/assessments/subAssessments",
        "id_properties_id": "ITEST-0001", "display_name": "ITEST-0001",
        "status": {"code": "Unhealthy", "description": "", "severity": "High"},
        "remediation": MUSL_FIX, "impact": "Test: musl fixed in 1.2.4-r2", "category": "OS",
        "description": "Test: musl fixed in 1.2.4-r2",
        "resource_details": {"source": "Azure", "id": image_id("mdvm", digest)},
        "additional_data": {},  # the SDK has no model of the MDVM additionalData
    })
    assert [(item["display_name"], item["status"]["severity"]) for item in items] == [
        ("ITEST-0001", "High"), ("ITEST-0002", "Medium"), ("ITEST-0002", "Medium")]


def test_mdvm_additional_data_keeps_critical_and_keys_cvss_as_defender(
        app: App, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "mdvmraw")
    security = client(app)
    name = next(iter(security.sub_assessments.list(LOCAL_RESOURCE_ID, MDVM_KEY))).name
    _, raw = security.sub_assessments.get(
        LOCAL_RESOURCE_ID, MDVM_KEY, name,
        cls=lambda response, model, headers: (model, json.loads(response.http_response.text())))
    data = raw["properties"]["additionalData"]
    details = data["vulnerabilityDetails"]
    software = data["softwareDetails"]
    assert (data["assessedResourceType"], details["severity"], details["cvss"],
            details["weaknesses"], details["cpe"], software["osDetails"], software["vendor"],
            software["fixStatus"], data["artifactDetails"]["repositoryName"]) == (
        "AzureContainerRegistryVulnerability", "Critical",
        {"3.0": {"base": 9.8, "cvssVectorString":
                 "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
        {"cwe": []}, None,
        {"osPlatform": "linux", "osName": "alpine", "osVersion": "alpine_3.18.4"}, "alpine",
        "FixAvailable", "mdvmraw")


def test_retired_plan_sub_assessments_deserialize_as_container_registry_vulnerability(
        app: App, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "qualys")
    items = list(client(app).sub_assessments.list(LOCAL_RESOURCE_ID, RETIRED_KEY))
    assert [(item.display_name, item.additional_data.as_dict()) for item in items] == [
        ("ITEST-0001", {"assessed_resource_type": "ContainerRegistryVulnerability",
                        "type": "Vulnerability", "cvss": {"3.0": {"base": 9.8}},
                        "patchable": True, "cve": [],
                        "published_time": "2024-05-01T00:00:00.000Z", "vendor_references": [],
                        "repository_name": "qualys", "image_digest": digest}),
        ("ITEST-0002", {"assessed_resource_type": "ContainerRegistryVulnerability",
                        "type": "Vulnerability", "cvss": {"3.0": {"base": 5.5}},
                        "patchable": False, "cve": [],
                        "published_time": "2024-05-01T00:00:00.000Z", "vendor_references": [],
                        "repository_name": "qualys", "image_digest": digest}),
        ("ITEST-0002", {"assessed_resource_type": "ContainerRegistryVulnerability",
                        "type": "Vulnerability", "cvss": {"3.0": {"base": 5.5}},
                        "patchable": False, "cve": [],
                        "published_time": "2024-05-01T00:00:00.000Z", "vendor_references": [],
                        "repository_name": "qualys", "image_digest": digest}),
    ]


def test_get_returns_the_listed_sub_assessment(app: App, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "single")
    security = client(app)
    listed = list(security.sub_assessments.list(LOCAL_RESOURCE_ID, RETIRED_KEY))
    got = security.sub_assessments.get(LOCAL_RESOURCE_ID, RETIRED_KEY, listed[2].name)
    assert got.as_dict() == listed[2].as_dict()


def test_subscription_list_has_both_shapes_told_apart_by_the_key_in_the_id(
        app: App, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "everything")
    items = list(client(app).sub_assessments.list_all(f"/subscriptions/{SUBSCRIPTION}"))
    assert sorted((key_of(item.id), item.display_name) for item in items) == [
        (MDVM_KEY, "ITEST-0001"), (MDVM_KEY, "ITEST-0002"), (MDVM_KEY, "ITEST-0002"),
        (RETIRED_KEY, "ITEST-0001"), (RETIRED_KEY, "ITEST-0002"),
        (RETIRED_KEY, "ITEST-0002")]


def test_digest_repository_and_severity_filters(app: App, tmp_path: Path) -> None:
    first = push_and_scan(app, tmp_path, "filter-a")
    push_and_scan(app, tmp_path, "filter-b")
    security = client(app)

    def listed(**params: str) -> list[tuple[str, str]]:
        return [(item.resource_details.id.split("/")[-3], item.display_name)
                for item in security.sub_assessments.list(LOCAL_RESOURCE_ID, MDVM_KEY,
                                                          params=params)]

    assert (listed(digest=first), listed(repository="filter-b", severity="Critical"),
            listed(fixStatus="NoFixAvailable", repository="filter-a")) == (
        [("filter-a", "ITEST-0001"), ("filter-a", "ITEST-0002"), ("filter-a", "ITEST-0002")],
        [("filter-b", "ITEST-0001")],
        [("filter-a", "ITEST-0002"), ("filter-a", "ITEST-0002")])


def test_next_link_keeps_the_key_in_the_query_and_the_api_version(app: App,
                                                                   tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "page-a")
    push_and_scan(app, tmp_path, "page-b")
    url = (f"{app.host.base_url}/api{LOCAL_RESOURCE_ID}/providers/Microsoft.Security/"
           f"assessments/{RETIRED_KEY}/subAssessments?api-version=2019-01-01-preview"
           f"&pageSize=1&code={FUNCTION_KEY}")
    pages = []
    while url:
        with urllib.request.urlopen(url, timeout=30) as response:
            page = json.loads(response.read())
        pages.append(sorted({item["properties"]["additionalData"]["repositoryName"]
                             for item in page["value"]}))
        url = page["nextLink"]
    assert pages == [["page-a"], ["page-b"]]


def test_parent_assessment_is_unhealthy_over_the_registry(app: App, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "parent")
    assessment = client(app).assessments.get(LOCAL_RESOURCE_ID, MDVM_KEY)
    assert (assessment.id, assessment.status.as_dict(), assessment.additional_data) == (
        f"{LOCAL_RESOURCE_ID}/providers/Microsoft.Security/assessments/{MDVM_KEY}",
        {"code": "Unhealthy",
         "description": "1 unhealthy, 0 healthy and 0 not fully assessed of 1 images"},
        {"images": "1", "unhealthyImages": "1", "healthyImages": "0",
         "notFullyAssessedImages": "0", "format": "MDVM"})
