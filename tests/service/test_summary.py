"""The dashboard's summary (``scanning.service.summary``): totals, fixable split, top
vulnerabilities and repositories, the trend, the listing; stored and read back (Azurite)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from scanning.model import (
    AssessmentStatus,
    FindingCounts,
    FixStatus,
    PlatformFindings,
    ScanTrigger,
    Severity,
)
from scanning.service.fanout import RescanPlan, RescanStart
from scanning.service.summary import (
    LISTING_BLOB,
    OVERVIEW_BLOB,
    SUMMARY_JOB_COLUMNS,
    BillingMonth,
    ListedImage,
    Listing,
    Overview,
    RescanSummary,
    SeverityTotal,
    TopRepository,
    TopVulnerability,
    TrendPoint,
    billing_months,
    image_findings,
    images_with,
    last_weekly_rescan,
    listing_from_bytes,
    listing_to_bytes,
    month_billing,
    overview_from_json,
    overview_or_refresh,
    overview_to_json,
    package_term,
    read_listing,
    refresh_summary,
    summarize,
    term_shard_from_bytes,
    term_shards_to_bytes,
    vulnerability_term,
)
from scanning.store import Assessment, BlobKind, ImageRecord, Store
from tests.store.factories import make_finding

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
PUSHED = datetime(2026, 11, 1, tzinfo=UTC)
CRITICAL, HIGH, MEDIUM, LOW = (severity.rank for severity in (
    Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW))


@dataclass(frozen=True, slots=True)
class Key:
    ids: tuple[str, ...]
    severity_rank: int
    fix_status: str
    disabled: bool = False
    packages: tuple[str, str] = ("openssl", "openssl3")


def _image(repository: str, digest: str, status: AssessmentStatus | None,
           **active: int) -> ImageRecord:
    return ImageRecord(registry="r.io", repository=repository, digest="sha256:" + digest * 64,
                       tags=("v1",), platforms=("linux/amd64",), status=status,
                       last_pushed=PUSHED, counts=FindingCounts(active={
                           Severity(name): count for name, count in active.items()}))


WEB = _image("web", "a", AssessmentStatus.UNHEALTHY, critical=2, high=1)
API = _image("api", "b", AssessmentStatus.UNHEALTHY, high=1, medium=1)
IMAGES = (
    (WEB, (Key(("CVE-1",), CRITICAL, "fixed"), Key(("CVE-1",), CRITICAL, "not_fixed"),
           Key(("CVE-2", "GHSA-2"), HIGH, "fixed"), Key(("CVE-9",), MEDIUM, "fixed", True))),
    (API, (Key(("CVE-2",), HIGH, "not_fixed"), Key(("CVE-4",), MEDIUM, "wont_fix"))),
    (_image("web", "c", AssessmentStatus.HEALTHY), ()),
    (_image("new", "d", None), ()),
)
PREVIOUS_TREND = (TrendPoint(day="2026-09-04", active=(9, 9, 9, 9, 9, 9)),  # 91 days back
                  TrendPoint(day="2026-09-05", active=(1, 2, 3, 4, 5, 6)),
                  TrendPoint(day="2026-12-03", active=(7, 7, 7, 7, 7, 7)))
RESCAN = RescanSummary(id="rescan-p-2026-W48", started_at="2026-11-29T03:00:00+00:00",
                       chunks_done=2, chunks_total=2, images_total=900, reassessed=899,
                       new_findings=3, failed=1, to_reanalyze=4, failed_chunks=0, complete=True)


def test_summarize_counts_statuses_fixable_split_and_tops() -> None:
    overview = summarize(IMAGES, NOW, PREVIOUS_TREND, RESCAN).overview
    assert overview == Overview(
        made_at=NOW, images=4,
        statuses=(("healthy", 1), ("not assessed", 1), ("unhealthy", 2)),
        severities=(SeverityTotal(severity=Severity.CRITICAL, fixable=1, not_fixable=1),
                    SeverityTotal(severity=Severity.HIGH, fixable=1, not_fixable=1),
                    SeverityTotal(severity=Severity.MEDIUM, fixable=0, not_fixable=1),
                    SeverityTotal(severity=Severity.LOW, fixable=0, not_fixable=0),
                    SeverityTotal(severity=Severity.NEGLIGIBLE, fixable=0, not_fixable=0),
                    SeverityTotal(severity=Severity.UNKNOWN, fixable=0, not_fixable=0)),
        top_vulnerabilities=(
            TopVulnerability(id="CVE-2", severity=Severity.HIGH, images=2),
            TopVulnerability(id="CVE-1", severity=Severity.CRITICAL, images=1),
            TopVulnerability(id="CVE-4", severity=Severity.MEDIUM, images=1)),
        top_repositories=(TopRepository(registry="r.io", repository="web", critical_high=3),
                          TopRepository(registry="r.io", repository="api", critical_high=1)),
        trend=(TrendPoint(day="2026-09-05", active=(1, 2, 3, 4, 5, 6)),
               TrendPoint(day="2026-12-03", active=(2, 2, 1, 0, 0, 0))),
        last_rescan=RESCAN)


def test_summarize_lists_each_image_with_its_fixable_findings_in_listing_order() -> None:
    listing = summarize(IMAGES, NOW).listing
    assert [(image.repository, image.digest[7], image.status) for image in listing.images] == [
        ("api", "b", "unhealthy"), ("new", "d", ""), ("web", "a", "unhealthy"),
        ("web", "c", "healthy")]
    assert (listing.images[2], listing.images[0]) == (
        ListedImage(registry="r.io", repository="web", digest="sha256:" + "a" * 64,
                    tags=("v1",), platforms=("linux/amd64",), status="unhealthy",
                    active=(2, 1, 0, 0, 0, 0), fixable=2, fixable_rank=CRITICAL,
                    last_pushed="2026-11-01T00:00:00+00:00", last_pulled="", assessed_at=""),
        ListedImage(registry="r.io", repository="api", digest="sha256:" + "b" * 64,
                    tags=("v1",), platforms=("linux/amd64",), status="unhealthy",
                    active=(0, 1, 1, 0, 0, 0), fixable=0, fixable_rank=-1,
                    last_pushed="2026-11-01T00:00:00+00:00", last_pulled="", assessed_at=""))


def test_top_vulnerabilities_stop_at_ten() -> None:
    images = [(_image("app", "e", AssessmentStatus.UNHEALTHY, low=12),
               tuple(Key((f"CVE-{number:02d}",), LOW, "fixed") for number in range(12)))]
    overview = summarize(images, NOW).overview
    assert [item.id for item in overview.top_vulnerabilities] == [
        f"CVE-{number:02d}" for number in range(10)]


def test_overview_and_listing_read_back_as_written() -> None:
    summary = summarize(IMAGES, NOW, PREVIOUS_TREND, RESCAN, (
        BillingMonth(month="2026-12", count=2, totals=(("EUR", "0.25"), ("USD", "0.29"))),))
    overview, listing = summary.overview, summary.listing
    assert (overview_from_json(json.loads(json.dumps(overview_to_json(overview)))),
            listing_from_bytes(listing_to_bytes(listing))) == (overview, listing)


@pytest.mark.integration
def test_refresh_writes_the_summary_pages_read(store: Store) -> None:
    store.images.record_push(registry="r.io", repository="web", digest=WEB.digest, at=PUSHED)
    store.save_assessment("r.io", "web", WEB.digest, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=NOW, results=(PlatformFindings(
            platform="linux/amd64", findings=(
                make_finding("CVE-1", "openssl", severity=Severity.CRITICAL),
                make_finding("CVE-2", "zlib", severity=Severity.HIGH,
                             fix_status=FixStatus.NOT_FIXED))),)))
    summary = refresh_summary(store, NOW)
    made, listing = summary.overview, summary.listing
    assert (overview_or_refresh(store, NOW), read_listing(store), made.severities[:2],
            listing.images[0].fixable, made.top_vulnerabilities) == (
        made, listing,
        (SeverityTotal(severity=Severity.CRITICAL, fixable=1, not_fixable=0),
         SeverityTotal(severity=Severity.HIGH, fixable=0, not_fixable=1)), 1,
        (TopVulnerability(id="CVE-1", severity=Severity.CRITICAL, images=1),
         TopVulnerability(id="CVE-2", severity=Severity.HIGH, images=1)))


@pytest.mark.integration
def test_the_first_view_makes_a_missing_summary(store: Store) -> None:
    made = overview_or_refresh(store, NOW)
    assert (made.images, store.blobs.exists(BlobKind.MARKERS, OVERVIEW_BLOB),
            store.blobs.exists(BlobKind.MARKERS, LISTING_BLOB)) == (0, True, True)


@pytest.mark.integration
def test_the_next_summary_keeps_the_earlier_days(store: Store) -> None:
    refresh_summary(store, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    later = refresh_summary(store, NOW).overview
    assert later.trend == (TrendPoint(day="2026-12-01", active=(0,) * 6),
                           TrendPoint(day="2026-12-03", active=(0,) * 6))


def _plan(store: Store, rescan_id: str, images: int) -> None:
    plan = RescanPlan(start=RescanStart(rescan_id=rescan_id, moment=NOW, window_days=30,
                                        chunk_images=500, purpose="rescan/2026-12-03"),
                      index_version="v1", chunks=1, images=images, reanalyze=0)
    store.blobs.put(BlobKind.MARKERS, f"rescans/{rescan_id}/plan.json",
                    json.dumps(plan.to_json()).encode())


@pytest.mark.integration
def test_the_last_weekly_rescan_is_the_latest_plan(store: Store) -> None:
    before = last_weekly_rescan(store)
    _plan(store, "rescan-p-2026-W48", 10)
    _plan(store, "rescan-p-2026-W49", 20)
    _plan(store, "reassess-p-20261203T0200", 30)
    assert (before, last_weekly_rescan(store)) == (None, RescanSummary(
        id="rescan-p-2026-W49", started_at=NOW.isoformat(), chunks_done=0, chunks_total=1,
        images_total=20, reassessed=0, new_findings=0, failed=0, to_reanalyze=0,
        failed_chunks=0, complete=False))


def test_listing_keeps_an_empty_registry() -> None:
    assert listing_from_bytes(listing_to_bytes(Listing(made_at=NOW, images=()))) == Listing(
        made_at=NOW, images=())


def _bill(store: Store, digest: str, at: datetime) -> None:
    store.billing.bill_first_scan(registry="r.io", repository="web", digest="sha256:" + digest * 64,
                                  trigger=ScanTrigger.PUSH, at=at, unit_price=Decimal("0.29"),
                                  currency="USD")


@pytest.mark.integration
def test_billing_sums_this_month_and_keeps_a_closed_month_once(store: Store) -> None:
    _bill(store, "a", datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    _bill(store, "b", datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    _bill(store, "c", datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    first = billing_months(store, NOW)
    _bill(store, "d", datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # after November was kept
    _bill(store, "e", datetime(2026, 12, 3, 1, 0, tzinfo=UTC))
    again = billing_months(store, NOW)
    assert (len(first), first[0].month, first[-2:], again[-2:]) == (
        12, "2026-01",
        (BillingMonth(month="2026-11", count=1, totals=(("USD", "0.29"),)),
         BillingMonth(month="2026-12", count=2, totals=(("USD", "0.58"),))),
        (BillingMonth(month="2026-11", count=1, totals=(("USD", "0.29"),)),
         BillingMonth(month="2026-12", count=3, totals=(("USD", "0.87"),))))


@pytest.mark.integration
def test_a_month_ended_less_than_a_day_ago_is_summed_again(store: Store) -> None:
    just_after = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    _bill(store, "a", datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    month_billing(store, "2026-11", just_after)
    _bill(store, "b", datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert month_billing(store, "2026-11", just_after).count == 2


@pytest.mark.integration
def test_an_unchanged_listing_is_not_read_again(store: Store) -> None:
    refresh_summary(store, NOW)
    first, again = read_listing(store), read_listing(store)
    refresh_summary(store, NOW)
    after_refresh = read_listing(store)
    assert (again is first, after_refresh is first, after_refresh) == (True, False, first)


@pytest.mark.integration
def test_keys_come_from_the_document_when_the_row_was_read_without_them(store: Store) -> None:
    store.images.record_push(registry="r.io", repository="web", digest=WEB.digest, at=PUSHED)
    store.save_assessment("r.io", "web", WEB.digest, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=NOW, results=(PlatformFindings(
            platform="linux/amd64", findings=(
                make_finding("CVE-1", "openssl", severity=Severity.CRITICAL),
                make_finding("CVE-2", "zlib", aliases=("GHSA-2",),
                             fix_status=FixStatus.NOT_FIXED))),)))
    (with_keys, _), = store.images.iter_with_etags(columns=SUMMARY_JOB_COLUMNS)
    without_keys = store.images.get("r.io", "web", WEB.digest)
    from_row, from_document = (store.findings.keys_of(with_keys),
                               store.findings.keys_of(without_keys))
    assert (from_document, [(key.ids, key.severity_rank, key.fix_status, key.disabled)
                            for key in from_row]) == (
        from_row, [(("CVE-1",), CRITICAL, "fixed", False),
                   (("CVE-2", "GHSA-2"), HIGH, "not_fixed", False)])


def test_the_term_index_lists_images_by_id_alias_and_package_in_listing_order() -> None:
    terms = summarize(IMAGES, NOW).terms
    assert (terms.made_at, dict(terms.postings)) == (NOW, {
        "id:cve-1": (2,), "id:cve-2": (0, 2), "id:ghsa-2": (2,), "id:cve-4": (0,),
        "id:cve-9": (2,), "package:openssl": (0, 2), "package:openssl3": (0, 2)})


def test_term_shards_read_back_their_terms() -> None:
    terms = summarize(IMAGES, NOW).terms
    shards = [term_shard_from_bytes(data) for data in term_shards_to_bytes(terms)]
    assert (len(shards), {term: positions for shard in shards
                          for term, positions in shard.postings.items()},
            {shard.made_at for shard in shards}) == (32, dict(terms.postings), {NOW})


@pytest.mark.integration
def test_images_with_every_term_come_from_one_summary(store: Store) -> None:
    for repository, digest, finding in (
            ("web", "a", make_finding("CVE-1", "openssl")),
            ("api", "b", make_finding("CVE-1", "zlib")),
            ("cli", "c", make_finding("CVE-2", "openssl"))):
        store.images.record_push(registry="r.io", repository=repository,
                                 digest="sha256:" + digest * 64, at=PUSHED)
        store.save_assessment("r.io", repository, "sha256:" + digest * 64, Assessment(
            status=AssessmentStatus.UNHEALTHY, assessed_at=NOW, results=(PlatformFindings(
                platform="linux/amd64", findings=(finding,)),)))
    refresh_summary(store, NOW)
    _, with_cve = images_with(store, NOW, (vulnerability_term("cve-1"),))
    _, with_both = images_with(store, NOW, (vulnerability_term("CVE-1"),
                                            package_term("OpenSSL")))
    found = image_findings(store, with_both)
    assert ([image.repository for image in with_cve], [image.repository for image in with_both],
            [(image.repository, results[0].findings[0].id) for image, results in found]) == (
        ["api", "web"], ["web"], [("web", "CVE-1")])
