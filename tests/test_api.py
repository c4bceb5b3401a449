"""The results API's handlers against a real store on Azurite, seeded through the store's API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from scanning import api
from scanning.errors import BadRequest, NotFound
from scanning.local.services import Azurite
from scanning.model import (
    AssessmentStatus,
    CvssScore,
    Finding,
    FixStatus,
    MatchDetail,
    OSInfo,
    PackageType,
    PlatformFindings,
    ScanState,
    ScanTrigger,
    Severity,
)
from scanning.store import Assessment, Store
from scanning.subassessments import SubAssessmentImage, to_sub_assessment

pytestmark = pytest.mark.integration

REGISTRY = "registry.example:5000"
OTHER_REGISTRY = "other.azurecr.io"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
MANIFEST = "sha256:" + "c" * 64
UNKNOWN_DIGEST = "sha256:" + "f" * 64
PUSHED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ASSESSED = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
NOW = datetime(2025, 3, 2, tzinfo=UTC)
URL = "http://127.0.0.1:7071/api/images"
DEBIAN = OSInfo(id="debian", version_id="12", codename="bookworm",
                pretty_name="Debian GNU/Linux 12 (bookworm)")


def finding(vuln_id: str, package: str, severity: Severity,
            fix_status: FixStatus = FixStatus.FIXED) -> Finding:
    return Finding(
        id=vuln_id, aliases=(), package=package, installed_version="1.0-1",
        package_type=PackageType.DPKG, purl=f"pkg:deb/debian/{package}@1.0-1",
        source_package=package, fixed_version="1.0-2" if fix_status is FixStatus.FIXED else "",
        fix_status=fix_status, severity=severity, vendor_severity="",
        cvss=(CvssScore(version="3.1", vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                        base_score=7.5, severity=severity),),
        remediation="Upgrade", summary=f"{vuln_id} in {package}", description="details",
        published="2024-01-01T00:00:00Z", modified="2024-02-01T00:00:00Z",
        references=("https://example.invalid/advisory",), layer_digest="sha256:" + "d" * 64,
        layer_instruction="RUN apt-get install", path="/var/lib/dpkg/status",
        match=MatchDetail(ecosystem="Debian:12", searched_name=package,
                          searched_version="1.0-1", range="introduced 0, fixed 1.0-2"),
    )


OPENSSL = finding("CVE-2024-0001", "openssl", Severity.HIGH)
ZLIB = finding("CVE-2024-0002", "zlib", Severity.LOW, FixStatus.NOT_FIXED)


@pytest.fixture()
def store(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("BILLING_UNIT_PRICE", "0.29")
    monkeypatch.setenv("BILLING_CURRENCY", "USD")
    namespace = Store.from_connection_string(azurite.connection_string,
                                             prefix="a" + uuid.uuid4().hex[:12])
    namespace.create()
    yield namespace
    namespace.drop()


def seed_image(store: Store, *, registry: str = REGISTRY, digest: str = DIGEST,
               findings: tuple[Finding, ...] = (OPENSSL, ZLIB),
               os_info: OSInfo | None = None) -> None:
    store.images.record_push(registry=registry, repository=REPOSITORY, digest=digest, at=PUSHED,
                             tag="1.0", media_type="application/vnd.oci.image.index.v1+json",
                             platforms=("linux/amd64",))
    store.save_assessment(registry, REPOSITORY, digest, Assessment(
        status=AssessmentStatus.UNHEALTHY if findings else AssessmentStatus.HEALTHY,
        assessed_at=ASSESSED, analyzer_version="a1", index_version="i1",
        matcher_version="m1", scan_id="s1", trigger=ScanTrigger.PUSH,
        results=(PlatformFindings(platform="linux/amd64", manifest_digest=MANIFEST,
                                  findings=findings, os=os_info),),
    ))


def counts(active: dict[str, int], disabled: dict[str, int] | None = None) -> dict[str, object]:
    order = ("critical", "high", "medium", "low", "negligible", "unknown")
    disabled = disabled or {}
    return {"active": {name: active.get(name, 0) for name in order},
            "disabled": {name: disabled.get(name, 0) for name in order},
            "activeTotal": sum(active.values()), "disabledTotal": sum(disabled.values())}


def image_body(status: str = "unhealthy", active: dict[str, int] | None = None,
               disabled: dict[str, int] | None = None, *, registry: str = REGISTRY,
               digest: str = DIGEST) -> dict[str, object]:
    return {
        "registry": registry, "repository": REPOSITORY, "digest": digest, "tags": ["1.0"],
        "platforms": ["linux/amd64"], "mediaType": "application/vnd.oci.image.index.v1+json",
        "sizeBytes": 0, "status": status, "reason": "",
        "counts": counts({"high": 1, "low": 1} if active is None else active, disabled),
        "firstPushed": "2025-03-01T12:00:00Z", "lastPushed": "2025-03-01T12:00:00Z",
        "lastPulled": None, "assessedAt": "2025-03-01T12:05:00Z", "analyzerVersion": "a1",
        "indexVersion": "i1", "matcherVersion": "m1", "lastScanId": "s1",
        "firstScanTrigger": "push",
        "deleted": False, "deletedAt": None, "scanState": None,
    }


def context(os_info: OSInfo | None = None, registry: str = REGISTRY) -> SubAssessmentImage:
    return SubAssessmentImage(registry=registry, repository=REPOSITORY, digest=DIGEST,
                              tags=("1.0",),
                              media_type="application/vnd.oci.image.index.v1+json",
                              last_pushed="2025-03-01T12:00:00Z", os=os_info,
                              platform="linux/amd64",
                              time_generated="2025-03-01T12:05:00Z")


def bad_request(message: str) -> api.ApiResponse:
    return api.ApiResponse(status=400, body={"error": {"code": "BadRequest",
                                                       "message": message}})


def rule_body(rule: object) -> bytes:
    return json.dumps(rule).encode()


DISABLE_BOTH = {"id": "hide-both", "justification": "accepted risk",
                "criteria": {"vulnerabilityIds": ["CVE-2024-0001", "CVE-2024-0002"]}}


# ---------------------------------------------------------------- images


def test_list_images_returns_status_and_counts(store: Store) -> None:
    seed_image(store)
    assert api.list_images(store, {}, URL) == api.ApiResponse(status=200, body={
        "value": [image_body()], "continuationToken": None, "nextLink": None})


def test_an_image_whose_scan_is_queued_shows_queued(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=PUSHED,
                             tag="1.0", scan_state=ScanState.QUEUED)
    image = api.list_images(store, {}).body["value"][0]
    assert (image["status"], image["scanState"]) == ("queued", "queued")


def test_an_image_being_scanned_shows_scanning(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=PUSHED,
                             tag="1.0", scan_state=ScanState.QUEUED)
    store.images.set_scan_state(REGISTRY, REPOSITORY, DIGEST, ScanState.SCANNING)
    image = api.list_images(store, {}).body["value"][0]
    assert (image["status"], image["scanState"]) == ("scanning", "scanning")


def test_list_images_filters_on_queued(store: Store) -> None:
    seed_image(store)
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=OTHER_DIGEST,
                             at=PUSHED, tag="2.0", scan_state=ScanState.QUEUED)
    queued = api.list_images(store, {"status": "queued"}).body["value"]
    unhealthy = api.list_images(store, {"status": "unhealthy"}).body["value"]
    assert ([image["digest"] for image in queued], [image["digest"] for image in unhealthy]) == (
        [OTHER_DIGEST], [DIGEST])


def test_list_images_by_scanning_leaves_out_assessed_images_being_rescanned(
        store: Store) -> None:
    seed_image(store)
    store.images.set_scan_state(REGISTRY, REPOSITORY, DIGEST, ScanState.SCANNING)
    assert api.list_images(store, {"status": "scanning"}).body["value"] == []


def test_an_assessment_replaces_the_scan_state(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=PUSHED,
                             tag="1.0", scan_state=ScanState.SCANNING)
    seed_image(store)
    image = api.list_images(store, {}).body["value"][0]
    assert (image["status"], image["scanState"]) == ("unhealthy", None)


def test_a_rescan_of_an_assessed_image_keeps_its_status(store: Store) -> None:
    seed_image(store)
    store.images.set_scan_state(REGISTRY, REPOSITORY, DIGEST, ScanState.SCANNING)
    image = api.get_image(store, DIGEST, {}, NOW).body
    assert (image["status"], image["scanState"]) == ("unhealthy", "scanning")


def test_list_images_severity_is_a_minimum_over_active_findings(store: Store) -> None:
    seed_image(store)
    critical = api.list_images(store, {"severity": "critical"}).body["value"]
    high = api.list_images(store, {"severity": "HIGH"}).body["value"]
    assert (critical, [image["digest"] for image in high]) == ([], [DIGEST])


def test_list_images_pages_with_continuation_token_and_next_link(store: Store) -> None:
    seed_image(store)
    seed_image(store, digest=OTHER_DIGEST)
    first = api.list_images(store, {"pageSize": "1", "code": "secret"}, URL + "?pageSize=1")
    token = first.body["continuationToken"]
    second = api.list_images(store, {"pageSize": "1", "continuationToken": token})
    assert ([image["digest"] for image in first.body["value"]], first.body["nextLink"],
            [image["digest"] for image in second.body["value"]],
            second.body["continuationToken"]) == (
        [DIGEST], f"{URL}?pageSize=1&continuationToken={token}", [OTHER_DIGEST], None)


@pytest.mark.parametrize(("query", "message"), [
    ({"pageSize": "0"}, "pageSize must be from 1 to 1000, got 0"),
    ({"pageSize": "100000000"},
     "pageSize must be a whole number from 1 to 1000, got '100000000'"),
    ({"pageSize": "-5"}, "pageSize must be a whole number from 1 to 1000, got '-5'"),
    ({"status": "sick"}, "parameter 'status' must be one of healthy, unhealthy, unsupported, "
                         "not_applicable, failed, partial, queued, scanning, got 'sick'"),
    ({"severity": "huge"}, "parameter 'severity' must be one of unknown, negligible, low, "
                           "medium, high, critical, got 'huge'"),
    ({"continuationToken": "!!!"}, "continuation token is malformed"),
    ({"registry": "a\x00b"}, "parameter 'registry' contains control characters"),
    ({"includeDeleted": "maybe"}, "parameter 'includeDeleted' must be true or false, "
                                  "got 'maybe'"),
])
def test_list_images_rejects_bad_parameters(store: Store, query: dict[str, str],
                                            message: str) -> None:
    assert api.respond(lambda: api.list_images(store, query)) == bad_request(message)


# ---------------------------------------------------------------- one image


def test_a_partly_read_platform_says_what_was_skipped(store: Store) -> None:
    skipped = "layer sha256:11: lib/apk/db/installed: record 3 (line 12) skipped: no P:"
    reason = f"some files were read only in part (1 warning): {skipped}"
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=PUSHED)
    store.save_assessment(REGISTRY, REPOSITORY, DIGEST, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=ASSESSED, reason=reason,
        results=(PlatformFindings(platform="linux/amd64", findings=(OPENSSL,), os=DEBIAN,
                                  analysis=AssessmentStatus.UNHEALTHY, reason=reason,
                                  warnings=(skipped,)),)))
    body = api.get_image(store, DIGEST, {}, NOW).body
    assert ({key: body["platformDetails"][0][key] for key in ("status", "reason", "warnings")},
            body["subAssessments"][0]["properties"]["status"]["description"]) == (
        {"status": "unhealthy", "reason": reason, "warnings": [skipped]},
        f"partial read: {reason}")


def test_get_image_returns_assessment_with_defender_sub_assessments(store: Store) -> None:
    seed_image(store, os_info=DEBIAN)
    response = api.get_image(store, DIGEST, {}, NOW)
    assert response == api.ApiResponse(status=200, body={
        **image_body(),
        "platformDetails": [{"platform": "linux/amd64", "manifestDigest": MANIFEST,
                             "os": {"id": "debian", "versionId": "12", "codename": "bookworm",
                                    "prettyName": "Debian GNU/Linux 12 (bookworm)"},
                             "status": "unhealthy", "reason": "", "warnings": []}],
        "subAssessments": [to_sub_assessment(context(DEBIAN), OPENSSL),
                           to_sub_assessment(context(DEBIAN), ZLIB)],
    })


def test_get_image_sub_assessment_is_defender_shaped(store: Store) -> None:
    seed_image(store, findings=(OPENSSL,))
    (item,) = api.get_image(store, DIGEST, {}, NOW).body["subAssessments"]
    properties = item["properties"]
    assert (properties["displayName"], properties["status"],
            properties["additionalData"]["assessedResourceType"],
            properties["additionalData"]["artifactDetails"]["digest"],
            properties["additionalData"]["softwareDetails"]["fixStatus"]) == (
        "CVE-2024-0001", {"code": "Unhealthy", "severity": "High", "cause": None,
                          "description": ""},
        "AzureContainerRegistryVulnerability", DIGEST, "FixAvailable")


def test_get_unknown_image_is_404(store: Store) -> None:
    assert api.respond(lambda: api.get_image(store, UNKNOWN_DIGEST, {}, NOW)) == api.ApiResponse(
        status=404, body={"error": {"code": "NotFound", "message": f"no image {UNKNOWN_DIGEST}"}})


@pytest.mark.parametrize("digest", ["sha256:ABC", "latest", "sha256:" + "a" * 65,
                                    "md5:" + "a" * 32])
def test_get_image_rejects_malformed_digest(store: Store, digest: str) -> None:
    assert api.respond(lambda: api.get_image(store, digest, {}, NOW)) == bad_request(
        f"digest must be sha256: and 64 lower-case hex digits, got {digest!r}")


def test_digest_in_two_registries_is_409_with_candidates(store: Store) -> None:
    seed_image(store)
    seed_image(store, registry=OTHER_REGISTRY)
    assert api.respond(lambda: api.get_image(store, DIGEST, {}, NOW)) == api.ApiResponse(
        status=409, body={"error": {
            "code": "Ambiguous",
            "message": f"{DIGEST} is stored in 2 registries; add a registry parameter",
            "candidates": [{"registry": OTHER_REGISTRY, "repository": REPOSITORY},
                           {"registry": REGISTRY, "repository": REPOSITORY}]}})


def test_registry_parameter_disambiguates_a_digest(store: Store) -> None:
    seed_image(store)
    seed_image(store, registry=OTHER_REGISTRY, findings=())
    body = api.get_image(store, DIGEST, {"registry": OTHER_REGISTRY}, NOW).body
    assert (body["registry"], body["status"], body["subAssessments"]) == (
        OTHER_REGISTRY, "healthy", [])


def test_repository_parameter_that_does_not_match_is_404(store: Store) -> None:
    seed_image(store)
    with pytest.raises(NotFound, match=r"no image .* in repository other/app"):
        api.get_image(store, DIGEST, {"repository": "other/app"}, NOW)


# ---------------------------------------------------------------- rules


def test_rule_disabling_every_finding_makes_the_image_healthy_at_once(store: Store) -> None:
    seed_image(store)
    created = api.create_rules(store, rule_body(DISABLE_BOTH), "application/json", NOW)
    listed = api.list_images(store, {}).body["value"]
    detail = api.get_image(store, DIGEST, {}, NOW).body
    assert (created.status, listed, detail["status"],
            [item["properties"]["status"]["code"] for item in detail["subAssessments"]]) == (
        201, [image_body("healthy", {}, {"high": 1, "low": 1})], "healthy",
        ["NotApplicable", "NotApplicable"])


def test_created_rule_is_returned_and_listed(store: Store) -> None:
    created = api.create_rules(store, rule_body(DISABLE_BOTH), "application/json", NOW)
    rule = {"id": "hide-both", "justification": "accepted risk",
            "created": "2025-03-02T00:00:00Z", "expires": None, "createdBy": "", "source": "",
            "criteria": {"vulnerabilityIds": ["CVE-2024-0001", "CVE-2024-0002"]}}
    assert (created, api.list_rules(store, {}, NOW)) == (
        api.ApiResponse(status=201, body=rule, headers=(("Location", "rules/hide-both"),)),
        api.ApiResponse(status=200, body={"value": [{**rule, "expired": False}],
                                          "continuationToken": None, "nextLink": None}))


def test_deleting_the_rule_brings_the_findings_back(store: Store) -> None:
    seed_image(store)
    api.create_rules(store, rule_body(DISABLE_BOTH), "application/json", NOW)
    deleted = api.delete_rule(store, "hide-both", NOW)
    assert (deleted, api.list_images(store, {}).body["value"]) == (
        api.ApiResponse(status=204), [image_body()])


def test_expired_rule_no_longer_hides_findings_when_read(store: Store) -> None:
    seed_image(store, findings=(OPENSSL,))
    rule = {**DISABLE_BOTH, "expires": "2025-03-03T00:00:00Z"}
    api.create_rules(store, rule_body(rule), "application/json", NOW)
    later = NOW + timedelta(days=2)
    assert api.get_image(store, DIGEST, {}, later).body["status"] == "unhealthy"


def test_rule_by_os_applies_to_images_of_that_os(store: Store) -> None:
    seed_image(store, findings=(OPENSSL,), os_info=OSInfo(id="debian", version_id="12.5"))
    rule = {"id": "debian", "justification": "j", "criteria": {"os": "debian:12"}}
    api.create_rules(store, rule_body(rule), "application/json", NOW)
    assert api.list_images(store, {}).body["value"][0]["status"] == "healthy"


def test_posting_the_same_rule_again_is_200_with_the_stored_rule(store: Store) -> None:
    api.create_rules(store, rule_body(DISABLE_BOTH), "application/json", NOW)
    again = api.create_rules(store, rule_body(DISABLE_BOTH), "application/json",
                             NOW + timedelta(hours=1))
    assert (again.status, again.body["created"]) == (200, "2025-03-02T00:00:00Z")


def test_rule_id_taken_by_other_criteria_is_409(store: Store) -> None:
    api.create_rules(store, rule_body(DISABLE_BOTH), "application/json", NOW)
    other = {**DISABLE_BOTH, "criteria": {"packages": ["zlib"]}}
    assert api.create_rules(store, rule_body(other), "application/json", NOW) == api.ApiResponse(
        status=409, body={"error": {"code": "Conflict", "message": "rule 'hide-both' exists "
                                    "with other criteria; delete it first"}})


@pytest.mark.parametrize(("body", "message"), [
    (b"", "the request needs a JSON body (a rule or an OpenVEX document)"),
    (b"{not json", "the request body is not JSON: Expecting property name enclosed in double "
                   "quotes: line 1 column 2 (char 1)"),
    (b"\xff\xfe{}", "the request body is not UTF-8: invalid start byte at byte 0"),
    (b"[" * 100_000, "the request body is nested too deeply"),
    (b'{"justification": "j", "criteria": {"cvssMin": ' + b"1" * 4301 + b"}}",
     "the request body has a 4301-digit integer; integers may have at most 19 digits"),
    (b'{"justification": "j", "criteria": {"cvssMin": 1e999}}',
     "the request body has a number out of range: 1e999"),
    (b'{"justification": "j", "criteria": {"cvssMin": NaN}}',
     "the request body has NaN, which is not a JSON number"),
    (b"[]", "a rule must be a JSON object"),
    (b'{"justification": "j", "criteria": {}}',
     "rule field 'criteria': needs at least one criterion (a rule without one would hide every "
     "finding)"),
])
def test_bad_rule_bodies_are_400(store: Store, body: bytes, message: str) -> None:
    assert api.respond(lambda: api.create_rules(store, body, "application/json", NOW)) == (
        bad_request(message))


def test_openvex_document_imports_not_affected_statements(store: Store) -> None:
    seed_image(store, findings=(OPENSSL,))
    document = {"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.invalid/vex",
                "statements": [{"vulnerability": {"name": "CVE-2024-0001"},
                                "products": [{"@id": f"pkg:oci/app@{DIGEST}"}],
                                "status": "not_affected",
                                "justification": "vulnerable_code_not_present"}]}
    response = api.create_rules(store, json.dumps({"openvex": document}).encode(),
                                "application/json", NOW)
    (rule,) = response.body["value"]
    assert (response.status, rule["criteria"], rule["source"],
            api.list_images(store, {}).body["value"][0]["status"]) == (
        201, {"vulnerabilityIds": ["CVE-2024-0001"], "digest": DIGEST},
        "openvex:https://example.invalid/vex", "healthy")


def test_delete_unknown_rule_is_404(store: Store) -> None:
    assert api.respond(lambda: api.delete_rule(store, "nope", NOW)) == api.ApiResponse(
        status=404, body={"error": {"code": "NotFound", "message": "no rule 'nope'"}})


def test_delete_rule_with_malformed_id_is_400(store: Store) -> None:
    assert api.respond(lambda: api.delete_rule(store, "a b", NOW)) == bad_request(
        "not a rule id: 'a b'")


# ---------------------------------------------------------------- findings


def test_findings_by_cve_across_images(store: Store) -> None:
    seed_image(store)
    response = api.query_findings(store, {"cve": "CVE-2024-0002"}, NOW)
    assert response == api.ApiResponse(status=200, body={
        "value": [to_sub_assessment(context(), ZLIB)], "continuationToken": None,
        "nextLink": None})


def test_findings_filter_by_fix_status_and_severity(store: Store) -> None:
    seed_image(store)
    fixed = api.query_findings(store, {"fixStatus": "fixed"}, NOW).body["value"]
    medium = api.query_findings(store, {"severity": "medium"}, NOW).body["value"]
    assert ([item["properties"]["id"] for item in fixed],
            [item["properties"]["id"] for item in medium]) == (
        ["CVE-2024-0001"], ["CVE-2024-0001"])


def test_findings_show_rules_as_disabled(store: Store) -> None:
    seed_image(store)
    api.create_rules(store, rule_body({"justification": "j", "criteria": {
        "packages": ["zlib"]}, "id": "zlib"}), "application/json", NOW)
    (item,) = api.query_findings(store, {"package": "zlib"}, NOW).body["value"]
    assert item["properties"]["status"] == {"code": "NotApplicable", "severity": "Low",
                                            "cause": "Exempt",
                                            "description": "Disabled by rule zlib"}


def test_findings_reject_bad_fix_status(store: Store) -> None:
    assert api.respond(lambda: api.query_findings(store, {"fixStatus": "soon"}, NOW)) == (
        bad_request("parameter 'fixStatus' must be one of fixed, not_fixed, wont_fix, "
                    "unimportant, end_of_life, unknown or Defender's FixAvailable, "
                    "NoFixAvailable, WontFix, Scheduled, Unknown, got 'soon'"))


@pytest.mark.parametrize(("fix_status", "expected"), [
    ("FixAvailable", ["CVE-2024-0001"]), ("NoFixAvailable", ["CVE-2024-0002"]),
    ("Scheduled", [])])
def test_findings_take_defenders_fix_status_names(store: Store, fix_status: str,
                                                  expected: list[str]) -> None:
    seed_image(store)
    found = api.query_findings(store, {"fixStatus": fix_status}, NOW).body["value"]
    assert [item["properties"]["id"] for item in found] == expected


# ---------------------------------------------------------------- scans


def test_scan_history_lists_records_filtered_by_digest(store: Store) -> None:
    started = store.scans.start(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST,
                                trigger=ScanTrigger.PUSH, started=PUSHED)
    store.scans.finish(started.id, finished=PUSHED + timedelta(seconds=3),
                       outcome=AssessmentStatus.UNHEALTHY)
    store.scans.start(registry=REGISTRY, repository=REPOSITORY, digest=OTHER_DIGEST,
                      trigger=ScanTrigger.RESCAN, started=PUSHED)
    assert api.list_scans(store, {"digest": DIGEST}) == api.ApiResponse(status=200, body={
        "value": [{"id": started.id, "registry": REGISTRY, "repository": REPOSITORY,
                   "digest": DIGEST, "trigger": "push", "started": "2025-03-01T12:00:00Z",
                   "finished": "2025-03-01T12:00:03Z", "durationSeconds": 3.0,
                   "outcome": "unhealthy", "error": ""}],
        "continuationToken": None, "nextLink": None})


def test_scan_record_by_history_id(store: Store) -> None:
    started = store.scans.start(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST,
                                trigger=ScanTrigger.MANUAL, started=PUSHED)
    assert (api.is_scan_record_id(started.id),
            api.get_scan_record(store, started.id).body["trigger"]) == (True, "manual")


def test_scan_history_rejects_bad_digest(store: Store) -> None:
    assert api.respond(lambda: api.list_scans(store, {"digest": "sha256:zz"})) == bad_request(
        "digest must be sha256: and 64 lower-case hex digits, got 'sha256:zz'")


# ---------------------------------------------------------------- billing


def test_billing_summary_and_billed_images_of_a_month(store: Store) -> None:
    for digest in (DIGEST, OTHER_DIGEST):
        store.billing.bill_first_scan(registry=REGISTRY, repository=REPOSITORY, digest=digest,
                                      trigger=ScanTrigger.PUSH, at=PUSHED,
                                      unit_price=Decimal("0.29"), currency="USD")
    assert api.billing(store, {"month": "2025-03"}, NOW) == api.ApiResponse(status=200, body={
        "month": "2025-03", "count": 2, "unitPrice": "0.29", "currency": "USD",
        "total": "0.58", "totals": {"USD": "0.58"},
        "value": [{"registry": REGISTRY, "repository": REPOSITORY, "repositories": [REPOSITORY],
                   "digest": digest, "trigger": "push", "billedAt": "2025-03-01T12:00:00Z",
                   "unitPrice": "0.29", "currency": "USD"} for digest in (DIGEST, OTHER_DIGEST)],
        "continuationToken": None, "nextLink": None})


def test_billing_lists_every_repository_of_a_digest_billed_once(store: Store) -> None:
    for repository in (REPOSITORY, "team/prod"):
        store.billing.bill_first_scan(registry=REGISTRY, repository=repository, digest=DIGEST,
                                      trigger=ScanTrigger.PUSH, at=PUSHED,
                                      unit_price=Decimal("0.29"), currency="USD")
    body = api.billing(store, {"month": "2025-03"}, NOW).body
    assert (body["count"], body["total"], [(item["repository"], item["repositories"])
                                           for item in body["value"]]) == (
        1, "0.29", [(REPOSITORY, [REPOSITORY, "team/prod"])])


def test_billing_defaults_to_the_current_month(store: Store) -> None:
    body = api.billing(store, {}, NOW).body
    assert (body["month"], body["count"], body["total"], body["value"]) == (
        "2025-03", 0, "0", [])


def test_billing_rejects_a_malformed_month(store: Store) -> None:
    assert api.respond(lambda: api.billing(store, {"month": "2025-13"}, NOW)) == bad_request(
        "month must be YYYY-MM, got '2025-13'")


def test_billing_rejects_a_month_in_full_width_digits(store: Store) -> None:
    month = "\uff12\uff10\uff12\uff15-03"  # 2025 in full-width digits
    assert api.respond(lambda: api.billing(store, {"month": month}, NOW)) == bad_request(
        f"month must be YYYY-MM, got {month!r}")


def test_scan_id_in_full_width_digits_is_not_a_scan_record_id() -> None:
    assert (api.is_scan_record_id("20250301T000000000000Z-0123abcd"),
            api.is_scan_record_id("\uff12" + "0250301T000000000000Z-0123abcd")) == (True, False)


# ---------------------------------------------------------------- POST scans, parsing only


def test_scan_request_reads_registry_repository_and_tag() -> None:
    assert api.scan_request(b'{"image": "myreg.azurecr.io/team/app:1.0"}') == (
        api.ManualScanRequest(registry="myreg.azurecr.io", repository="team/app", tag="1.0",
                              digest=""))


def test_scan_request_reads_force() -> None:
    assert api.scan_request(b'{"image": "myreg.azurecr.io/team/app:1.0", "force": true}') == (
        api.ManualScanRequest(registry="myreg.azurecr.io", repository="team/app", tag="1.0",
                              digest="", force=True))


@pytest.mark.parametrize(("body", "message"), [
    (b'{"image": 5}', "image must be a non-empty string"),
    (b'{"image": ' + b"5" * 4301 + b"}",
     "the request body has a 4301-digit integer; integers may have at most 19 digits"),
    (b'{"image": "alpine"}',
     "image must name its registry: <registry>/<repository>[:tag][@digest]"),
    (b'{"image": "oci:/etc"}', "only registry images can be scanned over HTTP"),
    (b'{"image": "r.io/a:1", "x": 1}',
     'the body must be {"image": "<registry>/<repository>[:tag][@digest]", '
     '"force": <true or false, optional>}'),
    (b'{"image": "r.io/a:1", "force": "yes"}', "force must be true or false"),
    (b'{"image": "r.io/UPPER"}',
     "image is not a valid reference: malformed repository name in 'r.io/UPPER'"),
    (b'{"image": "r.io/a@sha512:' + b"a" * 128 + b'"}',
     "the image digest must be sha256: and 64 lower-case hex digits, got 'sha512:"
     + "a" * 73 + "'"),
])
def test_bad_scan_requests_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        api.scan_request(body)
    assert str(raised.value) == message


def test_scan_event_resolves_the_tag_to_the_registry_digest() -> None:
    request = api.scan_request(b'{"image": "myreg.azurecr.io/team/app:1.0"}')
    event = api.scan_event(request, NOW,
                           lambda _: (DIGEST, "application/vnd.oci.image.index.v1+json"))
    assert (event.action, event.registry, event.repository, event.digest, event.tag,
            event.user_agent, event.time) == (
        "push", "myreg.azurecr.io", "team/app", DIGEST, "1.0", api.MANUAL_SCAN_USER_AGENT,
        "2025-03-02T00:00:00Z")
