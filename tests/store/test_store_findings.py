from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from scanning.model import AssessmentStatus, FixStatus, OSInfo, Severity
from scanning.rules import DisableRule, RuleCriteria
from scanning.store import Assessment, FindingFilter, FindingHit, PlatformFindings, Store
from scanning.store.findings import finding_partition
from tests.store.factories import make_finding

pytestmark = pytest.mark.integration

REGISTRY = "localhost:5000"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "c" * 64
T0 = datetime(2025, 3, 1, tzinfo=UTC)
OLD = (make_finding("CVE-2024-0001", "openssl"), make_finding("CVE-2024-0002", "zlib"))
NEW = (make_finding("CVE-2024-0003", "curl", severity=Severity.CRITICAL),)


def assessment(findings: tuple, at: datetime = T0, index_version: str = "i1") -> Assessment:
    return Assessment(
        status=AssessmentStatus.UNHEALTHY if findings else AssessmentStatus.HEALTHY,
        assessed_at=at, analyzer_version="a1", index_version=index_version, scan_id="s1",
        results=(PlatformFindings(platform="linux/amd64", manifest_digest="sha256:" + "d" * 64,
                                  findings=findings),),
    )


def stored(store: Store) -> tuple:
    return tuple(finding for result in store.findings_of(REGISTRY, DIGEST)
                 for finding in result.findings)


def row_count(store: Store) -> int:
    return len(list(store.findings.table.query_entities(
        "PartitionKey eq @pk", parameters={"pk": finding_partition(REGISTRY, DIGEST)})))


@pytest.fixture()
def pushed(store: Store) -> Store:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=T0)
    return store


def test_saved_findings_read_back_whole(pushed: Store) -> None:
    finding = dataclasses.replace(make_finding(aliases=("GHSA-xxxx-yyyy-zzzz",), score=9.8),
                                  extra={"note": "n"})
    pushed.save_assessment(REGISTRY, DIGEST, assessment((finding,)))
    assert pushed.findings_of(REGISTRY, DIGEST) == (PlatformFindings(
        platform="linux/amd64", manifest_digest="sha256:" + "d" * 64, findings=(finding,)),)


def test_save_updates_image_status_counts_and_versions(pushed: Store) -> None:
    record = pushed.save_assessment(REGISTRY, DIGEST, assessment(
        (*OLD, make_finding("CVE-2024-0009", disabled_by="rule-1", severity=Severity.LOW))))
    assert (record.status, record.counts.active[Severity.HIGH],
            record.counts.disabled[Severity.LOW], record.analyzer_version,
            record.index_version, record.last_scan_id, record.assessed_at) == (
        AssessmentStatus.UNHEALTHY, 2, 1, "a1", "i1", "s1", T0)


def test_reader_between_steps_sees_the_old_complete_set(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    new = assessment(NEW, T0 + timedelta(days=1))
    generation = pushed.findings.write_generation(REGISTRY, DIGEST, REPOSITORY, new.results)
    assert stored(pushed) == OLD  # after step 1: the new rows are invisible
    flip = pushed.findings.flip(REGISTRY, DIGEST, generation, new)
    assert stored(pushed) == NEW  # after step 2: the new set, whole
    assert row_count(pushed) == len(OLD) + len(NEW)
    pushed.findings.delete_generation(REGISTRY, DIGEST, flip.previous_generation)
    assert (stored(pushed), row_count(pushed)) == (NEW, len(NEW))


def test_reader_retries_when_the_pointer_moves_under_it(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    read_rows = pushed.findings.generation_rows
    calls: list[str] = []

    def racing_read(registry: str, digest: str, generation: str) -> list:
        rows = read_rows(registry, digest, generation)
        if not calls:  # a writer flips and deletes right after the reader's first read
            calls.append(generation)
            pushed.save_assessment(REGISTRY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
        return rows

    pushed.findings.generation_rows = racing_read  # type: ignore[method-assign]
    assert stored(pushed) == NEW


def test_older_assessment_does_not_replace_newer(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    result = pushed.findings.save(REGISTRY, DIGEST, assessment(OLD, T0))
    assert (result.applied, stored(pushed), row_count(pushed)) == (False, NEW, len(NEW))


def test_unchanged_findings_keep_their_generation(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    before = pushed.images.get(REGISTRY, DIGEST).current_generation
    record = pushed.save_assessment(REGISTRY, DIGEST, assessment(
        OLD, T0 + timedelta(days=7), index_version="i2"))
    assert (record.current_generation, record.index_version, record.assessed_at,
            stored(pushed)) == (before, "i2", T0 + timedelta(days=7), OLD)


def test_more_than_one_batch_of_findings_is_stored(pushed: Store) -> None:
    many = tuple(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}") for index in range(250))
    pushed.save_assessment(REGISTRY, DIGEST, assessment(many))
    pushed.save_assessment(REGISTRY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    assert (stored(pushed), row_count(pushed)) == (NEW, 1)


def test_stale_orphan_generation_is_collected(pushed: Store) -> None:
    pushed.findings.write_generation(REGISTRY, DIGEST, REPOSITORY, assessment(OLD).results,
                                     generation="g00000000000000001deadbeef")
    pushed.save_assessment(REGISTRY, DIGEST, assessment(NEW))
    assert row_count(pushed) == len(NEW)


def test_long_description_is_cut_to_fit_a_property(pushed: Store) -> None:
    finding = dataclasses.replace(make_finding(), description="\U0001f600" * 40_000)
    pushed.save_assessment(REGISTRY, DIGEST, assessment((finding,)))
    description = stored(pushed)[0].description
    assert (description.endswith(" [truncated]"), len(description.encode("utf-16-le")) <= 60_000
            ) == (True, True)


def _second_image(store: Store) -> str:
    digest = "sha256:" + "e" * 64
    store.images.record_push(registry=REGISTRY, repository="other/app", digest=digest, at=T0)
    store.save_assessment(REGISTRY, digest, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0, results=(PlatformFindings(
            platform="linux/arm64", findings=(
                make_finding("DSA-1", "openssl", aliases=("CVE-2024-0001",),
                             fix_status=FixStatus.NOT_FIXED),)),)))
    return digest


def test_query_findings_by_cve_matches_id_and_alias(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    other = _second_image(pushed)
    page = pushed.query_findings(FindingFilter(vulnerability_id="CVE-2024-0001"))
    assert sorted((hit.digest, hit.finding.id, hit.platform) for hit in page.items) == sorted([
        (DIGEST, "CVE-2024-0001", "linux/amd64"), (other, "DSA-1", "linux/arm64")])


def test_query_findings_by_package_fix_status_and_repository(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    other = _second_image(pushed)
    page = pushed.query_findings(FindingFilter(package="openssl", fix_status=FixStatus.NOT_FIXED,
                                               repository="other/app"))
    assert page.items == (FindingHit(
        registry=REGISTRY, repository="other/app", digest=other, platform="linux/arm64",
        manifest_digest="", finding=make_finding("DSA-1", "openssl", aliases=("CVE-2024-0001",),
                                                 fix_status=FixStatus.NOT_FIXED)),)


def test_query_findings_by_severity_skips_replaced_generations(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(OLD))
    new = assessment(NEW, T0 + timedelta(days=1))
    generation = pushed.findings.write_generation(REGISTRY, DIGEST, REPOSITORY, new.results)
    pushed.findings.flip(REGISTRY, DIGEST, generation, new)  # old rows still there
    page = pushed.query_findings(FindingFilter(severity=Severity.HIGH))
    assert [hit.finding.id for hit in page.items] == ["CVE-2024-0003"]


def test_query_findings_pages_without_loss_or_repeat(pushed: Store) -> None:
    many = tuple(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}") for index in range(23))
    pushed.save_assessment(REGISTRY, DIGEST, assessment(many))
    ids: list[str] = []
    token: str | None = None
    while True:
        page = pushed.query_findings(FindingFilter(package=""), page_size=5, token=token)
        ids.extend(hit.finding.id for hit in page.items)
        if page.next_token is None:
            break
        token = page.next_token
    assert sorted(ids) == sorted(finding.id for finding in many)
    assert len(ids) == 23


def test_query_findings_can_hide_disabled(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, assessment(
        (make_finding("CVE-1"), make_finding("CVE-2", "zlib", disabled_by="rule-1"))))
    page = pushed.query_findings(FindingFilter(include_disabled=False))
    assert [hit.finding.id for hit in page.items] == ["CVE-1"]


def test_apply_rules_flips_image_to_healthy_and_keeps_findings_visible(pushed: Store) -> None:
    debian = OSInfo(id="debian", version_id="12")
    pushed.save_assessment(REGISTRY, DIGEST, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0, results=(
            PlatformFindings(platform="linux/amd64", os=debian, findings=OLD),
            PlatformFindings(platform="linux/arm64", os=debian, findings=()))))
    rule = DisableRule(id="r1", justification="accepted", created=T0,
                       criteria=RuleCriteria(os="debian:12"))
    record = pushed.apply_rules(REGISTRY, DIGEST, [rule], now=T0)
    assert (record.status, record.counts.active_total, record.counts.disabled_total) == (
        AssessmentStatus.HEALTHY, 0, 2)
    assert pushed.findings_of(REGISTRY, DIGEST) == (
        PlatformFindings(platform="linux/amd64", os=debian, findings=tuple(
            dataclasses.replace(finding, disabled_by="r1") for finding in OLD)),
        PlatformFindings(platform="linux/arm64", os=debian, findings=()))


def test_apply_rules_keeps_a_failed_analysis_failed(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, DIGEST, Assessment(
        status=AssessmentStatus.FAILED, assessed_at=T0, reason="layer truncated"))
    record = pushed.apply_rules(REGISTRY, DIGEST, [], now=T0)
    assert (record.status, record.reason) == (AssessmentStatus.FAILED, "layer truncated")


def test_concurrent_saves_leave_exactly_one_complete_generation(pushed: Store) -> None:
    sets = [tuple(make_finding(f"CVE-2024-{run}{index:03d}", f"p{index}") for index in range(30))
            for run in range(4)]
    threads = [threading.Thread(target=pushed.save_assessment, args=(
        REGISTRY, DIGEST, assessment(findings, T0 + timedelta(minutes=run))))
        for run, findings in enumerate(sets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (stored(pushed), row_count(pushed)) == (sets[3], 30)
