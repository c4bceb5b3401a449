from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scanning.errors import BadRequest
from scanning.model import FindingCounts, FixStatus, OSInfo, Severity, count_findings
from scanning.rules import (
    DisableRule,
    ImageContext,
    RuleCriteria,
    apply_rules,
    rule_from_json,
    rule_matches,
    rule_to_json,
    rules_from_openvex,
)
from tests.store.factories import make_finding

NOW = datetime(2025, 3, 1, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64
IMAGE = ImageContext(registry="reg.io", repository="team/sub/app", digest=DIGEST,
                     manifest_digest="sha256:" + "b" * 64,
                     os=OSInfo(id="alpine", version_id="3.19.1"))


def rule(rule_id: str = "r1", expires: datetime | None = None, **criteria: Any) -> DisableRule:
    return DisableRule(id=rule_id, justification="why", created=NOW, expires=expires,
                       criteria=RuleCriteria(**criteria))


@pytest.mark.parametrize(("criteria", "expected"), [
    ({"vulnerability_ids": ("cve-2024-0001",)}, True),
    ({"vulnerability_ids": ("GHSA-aaaa",)}, True),  # an alias
    ({"vulnerability_ids": ("CVE-2099-1",)}, False),
    ({"min_severity": Severity.HIGH}, True),
    ({"min_severity": Severity.CRITICAL}, False),
    ({"max_severity": Severity.HIGH}, True),
    ({"max_severity": Severity.MEDIUM}, False),
    ({"cvss_min": 7.5, "cvss_max": 7.5}, True),
    ({"cvss_min": 7.6}, False),
    ({"fix_statuses": (FixStatus.NOT_FIXED,)}, True),
    ({"fix_statuses": (FixStatus.FIXED,)}, False),
    ({"package_names": ("OpenSSL",)}, True),
    ({"package_names": ("openssl-src",)}, True),  # the source package
    ({"package_names": ("zlib",)}, False),
    ({"repository_pattern": "team/*"}, True),  # * crosses /
    ({"repository_pattern": "other/*"}, False),
    ({"image_digest": DIGEST}, True),
    ({"image_digest": "sha256:" + "b" * 64}, True),  # the platform manifest
    ({"image_digest": "sha256:" + "c" * 64}, False),
    ({"os": "alpine"}, True),
    ({"os": "alpine:3.19"}, True),
    ({"os": "alpine:3.1"}, False),
    ({"os": "debian"}, False),
    ({"vulnerability_ids": ("CVE-2024-0001",), "package_names": ("zlib",)}, False),  # all must
    ({}, False),  # an empty rule hides nothing
])
def test_rule_matches(criteria: dict[str, Any], expected: bool) -> None:
    finding = make_finding("CVE-2024-0001", "openssl", aliases=("GHSA-aaaa",), score=7.5,
                           fix_status=FixStatus.NOT_FIXED, source_package="openssl-src")
    assert rule_matches(rule(**criteria), finding, IMAGE) is expected


def test_cvss_criterion_never_matches_a_finding_without_score() -> None:
    assert rule_matches(rule(cvss_max=10.0), make_finding(), IMAGE) is False


def test_os_criterion_needs_a_known_os() -> None:
    image = dataclasses.replace(IMAGE, os=None)
    assert rule_matches(rule(os="alpine"), make_finding(), image) is False


def test_apply_rules_sets_disabled_by_first_rule_in_id_order() -> None:
    findings = (make_finding("CVE-1"), make_finding("CVE-2", "zlib"))
    rules = [rule("r2", vulnerability_ids=("CVE-1",)), rule("r1", package_names=("openssl",))]
    assert [finding.disabled_by for finding in apply_rules(rules, findings, IMAGE, NOW)] == [
        "r1", ""]


def test_apply_rules_ignores_expired_rule_and_reenables() -> None:
    finding = make_finding("CVE-1", disabled_by="r1")
    expired = rule("r1", expires=NOW, vulnerability_ids=("CVE-1",))
    assert apply_rules([expired], [finding], IMAGE, NOW) == (
        dataclasses.replace(finding, disabled_by=""),)


def test_apply_rules_keeps_rule_before_expiry() -> None:
    active = rule("r1", expires=NOW + timedelta(seconds=1), vulnerability_ids=("CVE-1",))
    result = apply_rules([active], [make_finding("CVE-1")], IMAGE, NOW)
    assert [finding.disabled_by for finding in result] == ["r1"]


def test_count_findings_splits_active_and_disabled() -> None:
    counts = count_findings([make_finding(severity=Severity.HIGH),
                             make_finding(severity=Severity.HIGH, disabled_by="r"),
                             make_finding(severity=Severity.LOW)])
    zero = dict.fromkeys(Severity, 0)
    assert counts == FindingCounts(active={**zero, Severity.HIGH: 1, Severity.LOW: 1},
                                   disabled={**zero, Severity.HIGH: 1})


RULE_JSON = {
    "justification": " accepted risk ",
    "expires": "2025-06-01T00:00:00+02:00",
    "criteria": {"vulnerabilityIds": ["CVE-2024-0001", "CVE-2024-0001"], "minSeverity": "LOW",
                 "maxSeverity": "high", "cvssMin": 1, "cvssMax": 8.5,
                 "fixStatuses": ["not_fixed"], "packages": ["openssl"],
                 "repository": "team/*", "digest": DIGEST, "os": "debian:12"},
}


def test_rule_from_json_parses_every_field() -> None:
    parsed = rule_from_json(RULE_JSON, now=NOW, rule_id="r9")
    assert parsed == DisableRule(
        id="r9", justification="accepted risk", created=NOW,
        expires=datetime(2025, 5, 31, 22, 0, tzinfo=UTC),
        criteria=RuleCriteria(vulnerability_ids=("CVE-2024-0001",),
                              min_severity=Severity.LOW, max_severity=Severity.HIGH,
                              cvss_min=1.0, cvss_max=8.5, fix_statuses=(FixStatus.NOT_FIXED,),
                              package_names=("openssl",), repository_pattern="team/*",
                              image_digest=DIGEST, os="debian:12"))


def test_rule_json_round_trips() -> None:
    parsed = rule_from_json(RULE_JSON, now=NOW)
    assert rule_from_json(rule_to_json(parsed), now=NOW) == parsed


def test_rule_id_from_content_is_stable() -> None:
    first = rule_from_json(RULE_JSON, now=NOW)
    second = rule_from_json({**RULE_JSON, "justification": "other"}, now=NOW + timedelta(days=1))
    assert (first.id, first.id.startswith("rule-")) == (second.id, True)


@pytest.mark.parametrize(("data", "message"), [
    ([], "a rule must be a JSON object"),
    ({"criteria": {"packages": ["a"]}}, "'justification': is required"),
    ({"justification": "x", "criteria": {}}, "'criteria': needs at least one criterion"),
    ({"justification": "x"}, "'criteria': must be an object"),
    ({"justification": "x", "criteria": {"cve": ["a"]}}, "'criteria.cve': is not a known"),
    ({"justification": "x", "bogus": 1, "criteria": {"packages": ["a"]}},
     "'bogus': is not a known field"),
    ({"justification": "x", "criteria": {"minSeverity": "huge"}},
     "'criteria.minSeverity': must be one of"),
    ({"justification": "x", "criteria": {"minSeverity": "high", "maxSeverity": "low"}},
     "'criteria.minSeverity': is above maxSeverity"),
    ({"justification": "x", "criteria": {"cvssMin": 11}}, "'criteria.cvssMin': must be between"),
    ({"justification": "x", "criteria": {"cvssMin": True}}, "'criteria.cvssMin': must be a num"),
    ({"justification": "x", "criteria": {"fixStatuses": ["soon"]}},
     "'criteria.fixStatuses[0]': must be one of"),
    ({"justification": "x", "criteria": {"packages": "openssl"}},
     "'criteria.packages': must be a list of strings"),
    ({"justification": "x", "criteria": {"packages": [""]}},
     "'criteria.packages[0]': must be a non-empty string"),
    ({"justification": "x", "criteria": {"digest": "abc"}}, "'criteria.digest': is not a digest"),
    ({"justification": "x", "expires": "2020-01-01T00:00:00Z", "criteria": {"packages": ["a"]}},
     "'expires': is in the past"),
    ({"justification": "x", "expires": "2030-01-01", "criteria": {"packages": ["a"]}},
     "'expires': needs a time zone"),
    ({"justification": "x", "expires": "soon", "criteria": {"packages": ["a"]}},
     "'expires': is not an RFC 3339 timestamp"),
    ({"justification": "x", "id": "a/b", "criteria": {"packages": ["a"]}}, "'id': must be"),
])
def test_rule_from_json_rejects_bad_input(data: object, message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        rule_from_json(data, now=NOW)
    assert message in str(raised.value)


VEX = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://openvex.dev/docs/example/vex-1",
    "author": "Example",
    "timestamp": "2024-01-08T18:02:03-06:00",
    "version": 1,
    "statements": [
        {
            "vulnerability": {"name": "CVE-2023-1111", "aliases": ["GHSA-abcd"]},
            "products": [{
                "@id": "pkg:oci/app@sha256%3A" + "a" * 64 + "?repository_url=reg.io/team/app",
                "subcomponents": [{"@id": "pkg:deb/debian/openssl@3.0.1?arch=amd64"}],
            }],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        },
        {
            "vulnerability": {"name": "CVE-2023-2222"},
            "products": [{"@id": "pkg:apk/wolfi/git@2.39.0-r1?arch=armv7"}],
            "status": "not_affected",
            "impact_statement": "patched out",
            "timestamp": "2024-02-01T00:00:00Z",
        },
        {
            "vulnerability": {"name": "CVE-2023-3333"},
            "products": [{"@id": "pkg:apk/wolfi/git@2.39.0-r1"}],
            "status": "affected",
            "action_statement": "upgrade",
        },
    ],
}


def test_openvex_not_affected_statements_become_scoped_rules() -> None:
    rules = rules_from_openvex(VEX, now=NOW)
    assert [(rule.criteria, rule.justification, rule.created, rule.source) for rule in rules] == [
        (RuleCriteria(vulnerability_ids=("CVE-2023-1111", "GHSA-abcd"), image_digest=DIGEST,
                      package_names=("openssl",)),
         "VEX not_affected: vulnerable_code_not_in_execute_path",
         datetime(2024, 1, 9, 0, 2, 3, tzinfo=UTC), "openvex:https://openvex.dev/docs/example/vex-1"),
        (RuleCriteria(vulnerability_ids=("CVE-2023-2222",), package_names=("git",)),
         "VEX not_affected: patched out", datetime(2024, 2, 1, tzinfo=UTC),
         "openvex:https://openvex.dev/docs/example/vex-1"),
    ]


def test_openvex_import_is_idempotent() -> None:
    first = [item.id for item in rules_from_openvex(VEX, now=NOW)]
    assert first == [item.id for item in rules_from_openvex(VEX, now=NOW + timedelta(days=1))]
    assert len(set(first)) == 2


def test_openvex_rule_hides_only_its_image() -> None:
    vex_rule = rules_from_openvex(VEX, now=NOW)[0]
    finding = make_finding("GHSA-abcd", "openssl")
    other_image = dataclasses.replace(IMAGE, digest="sha256:" + "9" * 64, manifest_digest="")
    assert (rule_matches(vex_rule, finding, IMAGE),
            rule_matches(vex_rule, finding, other_image)) == (True, False)


@pytest.mark.parametrize(("statement", "message"), [
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:oci/a"}],
      "status": "not_affected", "justification": "component_not_present"},
     "no image digest or package purl"),
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:deb/debian/a@1"}],
      "status": "not_affected"}, "needs a justification or an impact_statement"),
    ({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:deb/debian/a@1"}],
      "status": "not_affected", "justification": "because"}, "is not a VEX justification"),
    ({"vulnerability": {}, "products": [], "status": "not_affected"}, ".name is required"),
    ({"vulnerability": {"name": "CVE-1"}, "status": "not_affected",
      "justification": "component_not_present"}, ".products must be a non-empty list"),
])
def test_openvex_rejects_incomplete_statements(statement: dict[str, object],
                                               message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        rules_from_openvex({"statements": [statement]}, now=NOW)
    assert message in str(raised.value)


def test_openvex_document_must_have_statements() -> None:
    with pytest.raises(BadRequest, match="'statements' must be a list"):
        rules_from_openvex({"@id": "x"}, now=NOW)
