"""The Defender-shaped handlers against a real store on Azurite: which entries an image gives,
the parent assessment's status, filters and errors."""

from __future__ import annotations

import re

import pytest

from scanning import api
from scanning.defender import LOCAL_RESOURCE_ID, MDVM_KEY, RETIRED_KEY, RegistryIds
from scanning.defender_api import Scope, get_assessment, get_sub_assessment, list_sub_assessments
from scanning.errors import BadRequest, NotFound
from scanning.model import AssessmentStatus, PlatformFindings, ScanTrigger
from scanning.store import Assessment, Store
from tests.test_api import (
    ASSESSED,
    DIGEST,
    MANIFEST,
    NOW,
    OPENSSL,
    OTHER_DIGEST,
    PUSHED,
    REGISTRY,
    REPOSITORY,
    ZLIB,
    seed_image,
    store,  # noqa: F401  (the fixture)
)

pytestmark = pytest.mark.integration

VERSION = {"api-version": "2019-01-01-preview"}
LOCAL = Scope(ids=RegistryIds(by_login={}), subscription="00000000-0000-0000-0000-000000000000",
              registry_id=LOCAL_RESOURCE_ID)


def seed_status(store: Store, digest: str, status: AssessmentStatus,  # noqa: F811
                reason: str = "") -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=digest, at=PUSHED,
                             tag="1.0", media_type="application/vnd.oci.image.manifest.v1+json",
                             platforms=("linux/amd64",))
    store.save_assessment(REGISTRY, REPOSITORY, digest, Assessment(
        status=status, reason=reason, assessed_at=ASSESSED, analyzer_version="a1",
        index_version="i1", scan_id="s1", trigger=ScanTrigger.PUSH,
        results=(PlatformFindings(platform="linux/amd64", manifest_digest=MANIFEST,
                                  findings=()),)))


def codes(response: api.ApiResponse) -> list[tuple[str, str]]:
    return [(item["properties"]["displayName"], item["properties"]["status"]["code"])
            for item in response.body["value"]]


def test_healthy_image_lists_one_healthy_entry(store: Store) -> None:  # noqa: F811
    seed_image(store, findings=())
    response = list_sub_assessments(store, LOCAL, MDVM_KEY, VERSION, NOW)
    assert codes(response) == [("No vulnerabilities found", "Healthy")]


def test_unsupported_image_lists_not_applicable(store: Store) -> None:  # noqa: F811
    seed_status(store, DIGEST, AssessmentStatus.UNSUPPORTED, "no package database")
    item = list_sub_assessments(store, LOCAL, RETIRED_KEY, VERSION, NOW).body["value"][0]
    assert item["properties"]["status"] == {"code": "NotApplicable", "severity": "Low",
                                            "cause": "unsupported",
                                            "description": "no package database"}


def test_findings_list_worst_first_with_time_generated(store: Store) -> None:  # noqa: F811
    seed_image(store)
    response = list_sub_assessments(store, LOCAL, MDVM_KEY, VERSION, NOW)
    assert ([(name, code) for name, code in codes(response)],
            [item["properties"]["timeGenerated"] for item in response.body["value"]]) == (
        [("CVE-2024-0001", "Unhealthy"), ("CVE-2024-0002", "Unhealthy")],
        ["2025-03-01T12:05:00Z", "2025-03-01T12:05:00Z"])


@pytest.mark.parametrize(("query", "expected"), [
    ({"fixStatus": "NoFixAvailable"}, [("CVE-2024-0002", "Unhealthy")]),
    ({"fixStatus": "fixed"}, [("CVE-2024-0001", "Unhealthy")]),
    ({"severity": "High"}, [("CVE-2024-0001", "Unhealthy")]),
    ({"cve": "CVE-2024-0002"}, [("CVE-2024-0002", "Unhealthy")]),
    ({"statusCode": "Healthy"}, []),
    ({"timeGeneratedSince": "2025-03-01T12:05:00Z"},
     [("CVE-2024-0001", "Unhealthy"), ("CVE-2024-0002", "Unhealthy")]),
    ({"timeGeneratedSince": "2025-03-01T12:05:01+00:00"}, []),
    ({"digest": OTHER_DIGEST}, []),
    ({"repository": "elsewhere"}, []),
])
def test_filters(store: Store, query: dict[str, str],  # noqa: F811
                 expected: list[tuple[str, str]]) -> None:
    seed_image(store)
    assert codes(list_sub_assessments(store, LOCAL, MDVM_KEY, {**VERSION, **query}, NOW)) == (
        expected)


@pytest.mark.parametrize(("query", "message"), [
    ({}, "api-version must be 2019-01-01-preview, got ''"),
    ({**VERSION, "fixStatus": "Later"},
     "parameter 'fixStatus' must be one of fixed, not_fixed, wont_fix, unimportant, "
     "end_of_life, unknown or Defender's FixAvailable, NoFixAvailable, WontFix, Scheduled, "
     "Unknown, got 'Later'"),
    ({**VERSION, "statusCode": "Sick"},
     "statusCode must be Healthy, Unhealthy or NotApplicable, got 'sick'"),
    ({**VERSION, "timeGeneratedSince": "yesterday"},
     "timeGeneratedSince must be an ISO 8601 time, got 'yesterday'"),
])
def test_bad_parameters_are_400(store: Store, query: dict[str, str],  # noqa: F811
                                message: str) -> None:
    with pytest.raises(BadRequest, match="^" + re.escape(message) + "$"):
        list_sub_assessments(store, LOCAL, MDVM_KEY, query, NOW)


def test_unknown_assessment_key_is_404(store: Store) -> None:  # noqa: F811
    with pytest.raises(NotFound):
        list_sub_assessments(store, LOCAL, "00000000-0000-0000-0000-000000000001", VERSION, NOW)


@pytest.mark.parametrize("query", [VERSION, {**VERSION, "digest": DIGEST}])
def test_unknown_registry_id_is_404(store: Store, query: dict[str, str]) -> None:  # noqa: F811
    scope = Scope(ids=RegistryIds(by_login={}), subscription="x",
                  registry_id=LOCAL_RESOURCE_ID.replace("/local", "/other"))
    with pytest.raises(NotFound, match=re.escape(
            "no registry with resource id " + LOCAL_RESOURCE_ID.replace("/local", "/other"))):
        list_sub_assessments(store, scope, MDVM_KEY, query, NOW)


def test_registry_left_out_of_the_mapping_is_not_listed(store: Store) -> None:  # noqa: F811
    seed_image(store)
    scope = Scope(ids=RegistryIds(by_login={"other.azurecr.io": "/subscriptions/s/r"}),
                  subscription="s")
    assert list_sub_assessments(store, scope, "", VERSION, NOW).body["value"] == []


def test_get_unknown_sub_assessment_is_404(store: Store) -> None:  # noqa: F811
    seed_image(store)
    with pytest.raises(NotFound):
        get_sub_assessment(store, LOCAL, MDVM_KEY, "7d3c6a60-0000-5000-8000-000000000000",
                           VERSION, NOW)


def status_of(store: Store) -> tuple[str, str | None]:  # noqa: F811
    status = get_assessment(store, LOCAL, MDVM_KEY,
                            {"api-version": "2021-06-01"}).body["properties"]["status"]
    return status["code"], status["cause"]


def test_registry_without_images_is_not_applicable(store: Store) -> None:  # noqa: F811
    assert status_of(store) == ("NotApplicable", "NoImages")


def test_registry_of_healthy_images_is_healthy(store: Store) -> None:  # noqa: F811
    seed_image(store, findings=())
    assert status_of(store) == ("Healthy", None)


def test_one_failed_image_keeps_the_registry_from_healthy(store: Store) -> None:  # noqa: F811
    seed_image(store, findings=())
    seed_status(store, OTHER_DIGEST, AssessmentStatus.FAILED, "registry timed out")
    assert status_of(store) == ("NotApplicable", "NotFullyAssessed")


def test_one_image_with_active_findings_makes_the_registry_unhealthy(
        store: Store) -> None:  # noqa: F811
    seed_image(store, findings=(OPENSSL, ZLIB))
    seed_status(store, OTHER_DIGEST, AssessmentStatus.FAILED, "registry timed out")
    assert status_of(store) == ("Unhealthy", None)


def test_pages_follow_images_and_keep_the_query(store: Store) -> None:  # noqa: F811
    seed_image(store)
    seed_image(store, digest=OTHER_DIGEST, findings=())
    url = "http://h/api/x?api-version=2019-01-01-preview&code=k&pageSize=1"
    first = list_sub_assessments(store, LOCAL, MDVM_KEY, {**VERSION, "pageSize": "1"}, NOW,
                                 url).body
    token = first["nextLink"].split("continuationToken=", 1)[1]
    second = list_sub_assessments(store, LOCAL, MDVM_KEY,
                                  {**VERSION, "pageSize": "1", "continuationToken": token},
                                  NOW, url).body
    assert (len(first["value"]), first["nextLink"].startswith(url + "&continuationToken="),
            [item["properties"]["status"]["code"] for item in second["value"]],
            second["nextLink"]) == (2, True, ["Healthy"], None)
