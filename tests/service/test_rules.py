"""Disable rules re-decide stored verdicts (Azurite): ``scanning.service.rules``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from scanning.model import AssessmentStatus, OSInfo, PlatformFindings
from scanning.rules import DisableRule, RuleCriteria
from scanning.service.rules import (
    create_rule,
    current_verdict,
    get_rule,
    load_rules,
    reapply_to_image,
)
from scanning.store import Assessment, Store
from tests.store.factories import make_finding

pytestmark = pytest.mark.integration

REGISTRY = "localhost:5000"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "c" * 64
T0 = datetime(2025, 3, 1, tzinfo=UTC)
OLD = (make_finding("CVE-2024-0001", "openssl"), make_finding("CVE-2024-0002", "zlib"))
DEBIAN = OSInfo(id="debian", version_id="12")


@pytest.fixture()
def pushed(store: Store) -> Store:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=T0)
    return store


def test_a_rule_flips_the_image_to_healthy_and_keeps_findings_visible(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0, results=(
            PlatformFindings(platform="linux/amd64", os=DEBIAN, findings=OLD,
                             analysis=AssessmentStatus.UNHEALTHY),
            PlatformFindings(platform="linux/arm64", os=DEBIAN, findings=(),
                             analysis=AssessmentStatus.HEALTHY))))
    rule = DisableRule(id="r1", justification="accepted", created=T0,
                       criteria=RuleCriteria(os="debian:12"))
    record = reapply_to_image(pushed, pushed.images.get(REGISTRY, REPOSITORY, DIGEST), (rule,), T0)
    assert (record.status, record.counts.active_total, record.counts.disabled_total) == (
        AssessmentStatus.HEALTHY, 0, 2)
    assert pushed.findings_of(REGISTRY, REPOSITORY, DIGEST) == (
        PlatformFindings(platform="linux/amd64", os=DEBIAN, findings=tuple(
            dataclasses.replace(finding, disabled_by="r1") for finding in OLD),
            analysis=AssessmentStatus.UNHEALTHY, status=AssessmentStatus.HEALTHY),
        PlatformFindings(platform="linux/arm64", os=DEBIAN, findings=(),
                         analysis=AssessmentStatus.HEALTHY, status=AssessmentStatus.HEALTHY))


def test_a_rule_never_makes_an_unsupported_platform_healthy(pushed: Store) -> None:
    """The image was unhealthy on amd64 and unsupported on arm64: with every finding of amd64
    disabled it is unsupported, not healthy (arm64 was never assessed)."""
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0, results=(
            PlatformFindings(platform="linux/amd64", os=DEBIAN, findings=OLD,
                             analysis=AssessmentStatus.UNHEALTHY),
            PlatformFindings(platform="linux/arm64", findings=(),
                             analysis=AssessmentStatus.UNSUPPORTED,
                             reason="no packages found"))))
    rule = DisableRule(id="r1", justification="accepted", created=T0,
                       criteria=RuleCriteria(os="debian:12"))
    record = reapply_to_image(pushed, pushed.images.get(REGISTRY, REPOSITORY, DIGEST), (rule,), T0)
    assert record.status is AssessmentStatus.UNSUPPORTED


def test_an_assessment_without_platforms_keeps_its_status(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, Assessment(
        status=AssessmentStatus.FAILED, assessed_at=T0, reason="layer truncated"))
    record = reapply_to_image(pushed, pushed.images.get(REGISTRY, REPOSITORY, DIGEST), (), T0)
    assert (record.status, record.reason) == (AssessmentStatus.FAILED, "layer truncated")


def test_an_expired_rule_stops_hiding_findings_when_read(pushed: Store) -> None:
    rule = DisableRule(id="r1", justification="until March", created=T0,
                       expires=T0 + timedelta(days=1), criteria=RuleCriteria(os="debian:12"))
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, Assessment(
        status=AssessmentStatus.HEALTHY, analysis_status=AssessmentStatus.UNHEALTHY,
        assessed_at=T0, results=(PlatformFindings(
            platform="linux/amd64", os=DEBIAN, analysis=AssessmentStatus.UNHEALTHY,
            findings=tuple(dataclasses.replace(f, disabled_by="r1") for f in OLD)),)))
    image = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    results = pushed.findings_of(REGISTRY, REPOSITORY, DIGEST)
    before = current_verdict(image, results, (rule,), T0)
    after = current_verdict(image, results, (rule,), T0 + timedelta(days=2))
    assert before is not None and after is not None
    assert ((before.status, before.active), (after.status, after.active)) == (
        (AssessmentStatus.HEALTHY, 0), (AssessmentStatus.UNHEALTHY, 2))


def test_rules_round_trip_through_the_store(store: Store) -> None:
    rule = DisableRule(id="rule-1", justification="accepted risk", created=T0,
                       expires=T0 + timedelta(days=30),
                       criteria=RuleCriteria(vulnerability_ids=("CVE-2024-0001",),
                                             repository_pattern="team/*"))
    assert (create_rule(store, rule), create_rule(store, rule)) == (True, False)
    assert (get_rule(store, "rule-1"), load_rules(store)) == (rule, (rule,))
