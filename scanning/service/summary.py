"""The dashboard's summary: what the overview, the images table, the billing page and the
vulnerability search read instead of every image row, made by one job.

Reading every image row takes seconds at 10,000 images, too slow for a page view. So
``refresh_summary`` reads them once (the summary columns and the findings' query keys, never
the findings documents) and writes marker blobs that the pages read instead:

- ``dashboard/overview.json``: images by status, active findings by severity split into
  fixable (a fixed version exists) and not, the top vulnerabilities by images affected, the
  top repositories by critical + high, the last weekly rescan's progress, and the trend: one
  point per day (that day's last summary), carried over from the previous summary and kept
  for ``TREND_DAYS`` days;
- ``dashboard/images.json.zst``: one compact row per image (zstd JSON), so the images table
  sorts, filters and pages 10,000+ images from one blob read;
- ``dashboard/terms/NN.json.zst``: the term index, which images (by position in that listing)
  have each vulnerability id, alias, package and source package, in ``TERM_SHARDS`` blobs by
  a hash of the term, so a search reads one small blob.

The overview blob also holds the last 12 months' billing (images billed, total) for the
billing page: a closed month is summed once and kept (``dashboard/billing/<month>.json``),
this month is summed from its records by each run.

It runs from a timer every five minutes, at the end of a rescan (the weekly one and the
re-assessment after an advisory refresh), after a rule change from the dashboard, on the
dashboard's *Refresh now*, and on the first view when there is none yet. Each blob says when
it was made; the pages show it ("as of").

The trend starts on the first day a summary ran: the scan history records each scan's
outcome, not its counts, and only an image's latest assessment is stored, so earlier days'
counts cannot be rebuilt.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson
import zstandard

from scanning.errors import NotFound, ScanError, StoreError, TransientStoreError
from scanning.model import FixStatus, PlatformFindings, Severity
from scanning.service.fanout import RescanProgress, rescan_progress
from scanning.store import BlobKind, ImageFilter, ImageRecord, Store
from scanning.store.images import KEYS_COLUMNS, count_column

log = logging.getLogger(__name__)

FORMAT = 1
OVERVIEW_BLOB = "dashboard/overview.json"
LISTING_BLOB = "dashboard/images.json.zst"
# Weekly rescans' marker folders (``scanning.functions.rescans.weekly_rescan_id``:
# ``rescan-<prefix>-<year>-W<week>``, so the greatest name is the latest).
WEEKLY_RESCAN_MARKERS = "rescans/rescan-"
SEVERITIES = tuple(sorted(Severity, reverse=True))  # critical first
TOP_VULNERABILITIES = 10
TOP_REPOSITORIES = 10
TREND_DAYS = 90
# The term index (what the Vulnerabilities search looks up) in this many blobs, so a search
# reads a small one: ``dashboard/terms/<shard>.json.zst``.
TERM_SHARDS = 32
TERMS_BLOB = "dashboard/terms/{:02d}.json.zst"
BILLING_MONTHS = 12
# A closed month's billing never changes: summed once (a day after it ended, so a record
# written late for its last seconds is in) and kept here.
CLOSED_MONTH_BLOB = "dashboard/billing/{}.json"
_BY_RANK = {severity.rank: severity for severity in Severity}
_MAX_LISTING_JSON = 1024 * 1024 * 1024
MAX_INDEX_READS = 3
ROW_READERS = 8
# Kept for the process: starting 8 threads for each search took a tenth of its time.
_row_readers = ThreadPoolExecutor(max_workers=ROW_READERS, thread_name_prefix="dashboard-rows")
# What the job reads of each image row: what the listing shows and the findings' query keys
# (fewer columns than the API's summary: the SDK's per-column decoding is most of the cost).
SUMMARY_JOB_COLUMNS = (
    "PartitionKey", "RowKey", "registry", "repository", "digest", "tags", "platforms",
    "status", "scan_state", *(count_column("active", severity) for severity in SEVERITIES),
    "last_pushed", "last_pulled", "assessed_at", "findings_total", "findings_keys_n",
    "findings_keys_external", *KEYS_COLUMNS)


class FindingKeyLike(Protocol):
    """What the summary reads of a finding's query key (``scanning.store.findings``)."""

    @property
    def ids(self) -> tuple[str, ...]: ...
    @property
    def packages(self) -> tuple[str, str]: ...
    @property
    def severity_rank(self) -> int: ...
    @property
    def fix_status(self) -> str: ...
    @property
    def disabled(self) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SeverityTotal:
    severity: Severity
    fixable: int
    not_fixable: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TopVulnerability:
    id: str
    severity: Severity  # the highest it has in any affected image
    images: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TopRepository:
    registry: str
    repository: str
    critical_high: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendPoint:
    day: str  # YYYY-MM-DD, UTC
    active: tuple[int, ...]  # per severity in ``SEVERITIES`` order


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanSummary:
    """A weekly rescan's progress as ``GET /api/rescans/{id}`` shows it."""

    id: str
    started_at: str
    chunks_done: int
    chunks_total: int
    images_total: int
    reassessed: int
    new_findings: int
    failed: int
    to_reanalyze: int
    failed_chunks: int
    complete: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingMonth:
    """A month's billing: images billed and the total per currency (decimal text)."""

    month: str  # YYYY-MM
    count: int
    totals: tuple[tuple[str, str], ...]  # (currency, amount), by currency


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    made_at: datetime
    images: int
    statuses: tuple[tuple[str, int], ...]  # by status name; "not assessed" for none yet
    severities: tuple[SeverityTotal, ...]  # in ``SEVERITIES`` order
    top_vulnerabilities: tuple[TopVulnerability, ...]
    top_repositories: tuple[TopRepository, ...]
    trend: tuple[TrendPoint, ...]  # oldest first
    last_rescan: RescanSummary | None
    billing: tuple[BillingMonth, ...] = ()  # the last ``BILLING_MONTHS`` months, oldest first


class ListedImage(NamedTuple):
    """One image as the images table shows it. A named tuple, not a dataclass: a view builds
    one per image from the listing blob, and a tuple is several times cheaper to build."""

    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    platforms: tuple[str, ...]
    status: str  # the assessment's, or the scan's before one; "" when never scanned
    active: tuple[int, ...]  # per severity in ``SEVERITIES`` order
    fixable: int  # active findings with a fixed version
    fixable_rank: int  # the highest severity rank among them, -1 when none
    last_pushed: str
    last_pulled: str
    assessed_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TermIndex:
    """Which images (positions in the listing of the same summary) have a finding with a
    vulnerability id or alias (``id:<name>``) or a package or source package
    (``package:<name>``); names in lower case (``casefold``), as the API's search matches."""

    made_at: datetime
    postings: Mapping[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    overview: Overview
    listing: Listing
    terms: TermIndex


def vulnerability_term(name: str) -> str:
    return f"id:{name.casefold()}"


def package_term(name: str) -> str:
    return f"package:{name.casefold()}"


def listing_order(image: ListedImage) -> tuple[str, str, str]:
    """The listing's order: registry, repository (any case), digest."""
    return image.registry.casefold(), image.repository.casefold(), image.digest


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    made_at: datetime
    images: tuple[ListedImage, ...]  # in ``listing_order``


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _listed(image: ImageRecord, keys: Sequence[FindingKeyLike]) -> ListedImage:
    fixable = [key.severity_rank for key in keys
               if not key.disabled and key.fix_status == FixStatus.FIXED.value]
    status = image.status or image.scan_state
    return ListedImage(
        registry=image.registry, repository=image.repository, digest=image.digest,
        tags=image.tags, platforms=image.platforms, status=status.value if status else "",
        active=tuple(image.counts.active.get(severity, 0) for severity in SEVERITIES),
        fixable=len(fixable), fixable_rank=max(fixable, default=-1),
        last_pushed=_time(image.last_pushed), last_pulled=_time(image.last_pulled),
        assessed_at=_time(image.assessed_at))


def _trend(previous: Iterable[TrendPoint], today: TrendPoint) -> tuple[TrendPoint, ...]:
    """``previous`` with today's point replaced or added, the last ``TREND_DAYS`` days."""
    first_kept = (datetime.fromisoformat(today.day) - timedelta(days=TREND_DAYS - 1)).date()
    kept = [point for point in previous if point.day != today.day
            and datetime.fromisoformat(point.day).date() >= first_kept]
    return tuple(sorted((*kept, today), key=lambda point: point.day))


def summarize(images: Iterable[tuple[ImageRecord, Sequence[FindingKeyLike]]], now: datetime,
              previous_trend: Iterable[TrendPoint] = (),
              last_rescan: RescanSummary | None = None,
              billing: tuple[BillingMonth, ...] = ()) -> Summary:
    """The overview, the listing and the term index of ``images`` (each with its findings'
    keys), one pass."""
    statuses: Counter[str] = Counter()
    fixable: Counter[Severity] = Counter()
    not_fixable: Counter[Severity] = Counter()
    affected: Counter[str] = Counter()
    highest: dict[str, int] = {}
    repositories: Counter[tuple[str, str]] = Counter()
    listed: list[ListedImage] = []
    # Each image's terms as one tuple of shared strings: a term met in many images is kept
    # once (``canonical``), not once per image in a set of its own (at 100,000 images of ~70
    # findings the per-image frozensets of fresh strings took gigabytes).
    canonical: dict[str, str] = {}
    terms_of: list[tuple[str, ...]] = []
    for image, keys in images:
        statuses[image.status.value if image.status else "not assessed"] += 1
        active_ids = set()
        for key in keys:
            if key.disabled:
                continue
            severity = _BY_RANK.get(key.severity_rank, Severity.UNKNOWN)
            (fixable if key.fix_status == FixStatus.FIXED.value else not_fixable)[severity] += 1
            active_ids.add(key.ids[0])
            highest[key.ids[0]] = max(highest.get(key.ids[0], -1), key.severity_rank)
        affected.update(active_ids)
        serious = (image.counts.active.get(Severity.CRITICAL, 0)
                   + image.counts.active.get(Severity.HIGH, 0))
        if serious:
            repositories[(image.registry, image.repository)] += serious
        listed.append(_listed(image, keys))
        terms_of.append(tuple(canonical.setdefault(term, term) for term in frozenset((
            *(vulnerability_term(name) for key in keys for name in key.ids),
            *(package_term(name) for key in keys for name in key.packages if name)))))
    order = sorted(range(len(listed)), key=lambda index: listing_order(listed[index]))
    postings: dict[str, list[int]] = {}
    for position, index in enumerate(order):
        for term in terms_of[index]:
            postings.setdefault(term, []).append(position)
    severities = tuple(SeverityTotal(severity=severity, fixable=fixable[severity],
                                     not_fixable=not_fixable[severity])
                       for severity in SEVERITIES)
    top = sorted(affected.items(), key=lambda item: (-item[1], -highest[item[0]], item[0]))
    repository_order = sorted(repositories.items(), key=lambda item: (-item[1], item[0]))
    today = TrendPoint(day=now.date().isoformat(), active=tuple(
        total.fixable + total.not_fixable for total in severities))
    overview = Overview(
        made_at=now, images=len(listed), statuses=tuple(sorted(statuses.items())),
        severities=severities,
        top_vulnerabilities=tuple(
            TopVulnerability(id=vulnerability, severity=_BY_RANK[highest[vulnerability]],
                             images=count)
            for vulnerability, count in top[:TOP_VULNERABILITIES]),
        top_repositories=tuple(
            TopRepository(registry=registry, repository=repository, critical_high=count)
            for (registry, repository), count in repository_order[:TOP_REPOSITORIES]),
        trend=_trend(previous_trend, today), last_rescan=last_rescan, billing=billing)
    return Summary(overview=overview,
                   listing=Listing(made_at=now, images=tuple(listed[index] for index in order)),
                   terms=TermIndex(made_at=now, postings={
                       term: tuple(positions) for term, positions in postings.items()}))


# ---------------------------------------------------------------- codecs


def overview_to_json(overview: Overview) -> dict[str, Any]:
    rescan = overview.last_rescan
    return {
        "format": FORMAT, "madeAt": overview.made_at.isoformat(), "images": overview.images,
        "statuses": [list(item) for item in overview.statuses],
        "severities": [[total.severity.value, total.fixable, total.not_fixable]
                       for total in overview.severities],
        "topVulnerabilities": [[item.id, item.severity.value, item.images]
                               for item in overview.top_vulnerabilities],
        "topRepositories": [[item.registry, item.repository, item.critical_high]
                            for item in overview.top_repositories],
        "trend": [[point.day, *point.active] for point in overview.trend],
        "lastRescan": None if rescan is None else {
            "id": rescan.id, "startedAt": rescan.started_at, "chunksDone": rescan.chunks_done,
            "chunksTotal": rescan.chunks_total, "imagesTotal": rescan.images_total,
            "reassessed": rescan.reassessed, "newFindings": rescan.new_findings,
            "failed": rescan.failed, "toReanalyze": rescan.to_reanalyze,
            "failedChunks": rescan.failed_chunks, "complete": rescan.complete},
        "billing": [_billing_to_json(month) for month in overview.billing],
    }


def _billing_to_json(month: BillingMonth) -> list[Any]:
    return [month.month, month.count, [list(total) for total in month.totals]]


def _billing_from_json(item: Sequence[Any]) -> BillingMonth:
    month, count, totals = item
    return BillingMonth(month=str(month), count=int(count),
                        totals=tuple((str(currency), str(amount)) for currency, amount in totals))


def overview_from_json(data: Mapping[str, Any]) -> Overview:
    try:
        rescan = data["lastRescan"]
        return Overview(
            made_at=datetime.fromisoformat(data["madeAt"]), images=int(data["images"]),
            statuses=tuple((str(name), int(count)) for name, count in data["statuses"]),
            severities=tuple(SeverityTotal(severity=Severity(name), fixable=int(fixed),
                                           not_fixable=int(unfixed))
                             for name, fixed, unfixed in data["severities"]),
            top_vulnerabilities=tuple(
                TopVulnerability(id=str(name), severity=Severity(severity), images=int(count))
                for name, severity, count in data["topVulnerabilities"]),
            top_repositories=tuple(
                TopRepository(registry=str(registry), repository=str(repository),
                              critical_high=int(count))
                for registry, repository, count in data["topRepositories"]),
            trend=tuple(TrendPoint(day=str(day), active=tuple(int(n) for n in counts))
                        for day, *counts in data["trend"]),
            last_rescan=None if rescan is None else RescanSummary(
                id=str(rescan["id"]), started_at=str(rescan["startedAt"]),
                chunks_done=int(rescan["chunksDone"]), chunks_total=int(rescan["chunksTotal"]),
                images_total=int(rescan["imagesTotal"]), reassessed=int(rescan["reassessed"]),
                new_findings=int(rescan["newFindings"]), failed=int(rescan["failed"]),
                to_reanalyze=int(rescan["toReanalyze"]),
                failed_chunks=int(rescan["failedChunks"]), complete=bool(rescan["complete"])),
            billing=tuple(_billing_from_json(item) for item in data.get("billing", ())))
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(f"the dashboard summary {OVERVIEW_BLOB} is malformed: {error}") \
            from error


def listing_to_bytes(listing: Listing) -> bytes:
    rows = [[image.registry, image.repository, image.digest, list(image.tags),
             list(image.platforms), image.status, list(image.active), image.fixable,
             image.fixable_rank, image.last_pushed, image.last_pulled, image.assessed_at]
            for image in listing.images]
    return zstandard.ZstdCompressor(level=3).compress(orjson.dumps(
        {"format": FORMAT, "madeAt": listing.made_at.isoformat(), "rows": rows}))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building tens of thousands of small tuples triggers the cyclic garbage collector
    again and again, each time walking every object the process holds: several times the
    parse itself (225 ms instead of 25 ms for 10,000 rows). Tuples of strings and numbers
    form no cycles, so nothing is lost by pausing it meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def listing_from_bytes(data: bytes) -> Listing:
    with _collector_paused():
        return _listing_from_bytes(data)


def _listing_from_bytes(data: bytes) -> Listing:
    try:
        document = orjson.loads(zstandard.ZstdDecompressor().decompress(
            data, max_output_size=_MAX_LISTING_JSON))
        return Listing(made_at=datetime.fromisoformat(document["madeAt"]), images=tuple(
            ListedImage(registry, repository, digest, tuple(tags), tuple(platforms), status,
                        tuple(active), fixable, fixable_rank, pushed, pulled, assessed)
            for (registry, repository, digest, tags, platforms, status, active, fixable,
                 fixable_rank, pushed, pulled, assessed) in document["rows"]))
    except (zstandard.ZstdError, orjson.JSONDecodeError, KeyError, TypeError,
            ValueError) as error:
        raise StoreError(f"the dashboard listing {LISTING_BLOB} is malformed: {error}") \
            from error


def term_shard(term: str) -> int:
    """The shard blob that holds ``term`` (a stable hash: every process must agree)."""
    return hashlib.sha256(term.encode()).digest()[0] % TERM_SHARDS


def term_shards_to_bytes(terms: TermIndex) -> list[bytes]:
    """One zstd JSON document per shard: the summary's time and its terms' postings."""
    shards: list[dict[str, list[int]]] = [{} for _ in range(TERM_SHARDS)]
    for term, positions in terms.postings.items():
        shards[term_shard(term)][term] = list(positions)
    compressor = zstandard.ZstdCompressor(level=3)
    return [compressor.compress(orjson.dumps({"format": FORMAT,
                                              "madeAt": terms.made_at.isoformat(),
                                              "postings": shard}))
            for shard in shards]


def term_shard_from_bytes(data: bytes) -> TermIndex:
    try:
        document = orjson.loads(zstandard.ZstdDecompressor().decompress(
            data, max_output_size=_MAX_LISTING_JSON))
        return TermIndex(made_at=datetime.fromisoformat(document["madeAt"]), postings={
            str(term): tuple(int(position) for position in positions)
            for term, positions in document["postings"].items()})
    except (zstandard.ZstdError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError,
            ValueError) as error:
        raise StoreError(f"a dashboard term index shard is malformed: {error}") from error


# ---------------------------------------------------------------- the job and its readers


def _rescan_summary(progress: RescanProgress) -> RescanSummary:
    shown = progress.to_json()
    images = shown["images"]
    return RescanSummary(
        id=shown["id"], started_at=shown["startedAt"], chunks_done=shown["chunks"]["done"],
        chunks_total=shown["chunks"]["total"], images_total=images["total"],
        reassessed=images["reassessed"], new_findings=images["newFindings"],
        failed=images["failed"], to_reanalyze=images["toReanalyze"],
        failed_chunks=len(shown["failedChunks"]), complete=shown["complete"])


def last_weekly_rescan(store: Store) -> RescanSummary | None:
    """The progress of the latest weekly rescan that wrote its plan (None before any)."""
    plans = sorted(name for name in store.blobs.names(BlobKind.MARKERS, WEEKLY_RESCAN_MARKERS)
                   if name.endswith("/plan.json"))
    if not plans:
        return None
    rescan_id = plans[-1].split("/")[1]
    try:
        return _rescan_summary(rescan_progress(store, rescan_id))
    except NotFound:
        return None


def months_back(now: datetime, count: int) -> tuple[str, ...]:
    """The ``count`` months up to ``now``'s (UTC), oldest first."""
    year, month = now.year, now.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return tuple(reversed(months))


def _closed(month: str, now: datetime) -> bool:
    year, number = int(month[:4]), int(month[5:])
    following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=now.tzinfo)
    return now - following >= timedelta(days=1)


def _summed_month(store: Store, month: str) -> BillingMonth:
    """``month``'s billing read from its records (every record of the month)."""
    summed = store.billing.summary(month)
    return BillingMonth(month=month, count=summed.count, totals=tuple(
        (currency, str(amount)) for currency, amount in sorted(summed.totals.items())))


def month_billing(store: Store, month: str, now: datetime) -> BillingMonth:
    """``month``'s billing: a closed month's from its kept sum (summed once), another's read
    from its records."""
    kept = CLOSED_MONTH_BLOB.format(month)
    closed = _closed(month, now)
    if closed:
        try:
            return _billing_from_json(json.loads(store.blobs.get(BlobKind.MARKERS, kept)))
        except NotFound:
            pass
    summed = _summed_month(store, month)
    if closed:
        store.blobs.put(BlobKind.MARKERS, kept, json.dumps(_billing_to_json(summed)).encode(),
                        content_type="application/json")
    return summed


def billing_months(store: Store, now: datetime) -> tuple[BillingMonth, ...]:
    """The last ``BILLING_MONTHS`` months, oldest first."""
    return tuple(month_billing(store, month, now)
                 for month in months_back(now, BILLING_MONTHS))


def _with_keys(store: Store) -> Iterator[tuple[ImageRecord, Sequence[FindingKeyLike]]]:
    for image, _ in store.images.iter_with_etags(ImageFilter(), SUMMARY_JOB_COLUMNS):
        yield image, store.findings.keys_of(image)


def read_overview(store: Store) -> Overview | None:
    try:
        data = store.blobs.get(BlobKind.MARKERS, OVERVIEW_BLOB)
    except NotFound:
        return None
    try:
        document = json.loads(data)
    except ValueError as error:
        raise StoreError(f"the dashboard summary {OVERVIEW_BLOB} is not JSON: {error}") \
            from error
    return overview_from_json(document)


_listings_lock = threading.Lock()
_listings: dict[str, tuple[str, Listing]] = {}  # by account and container: (ETag, listing)


def read_listing(store: Store) -> Listing | None:
    """The stored listing. Each app instance keeps the one it read last and downloads it
    again only when its ETag changed (a conditional read, nothing else on an unchanged one):
    parsing 10,000 rows is most of an images view."""
    container = f"{store.blobs.service.url}/{store.blobs.container_name(BlobKind.MARKERS)}"
    with _listings_lock:
        etag, kept = _listings.get(container, ("", None))
    try:
        fresh = store.blobs.get_if_changed(BlobKind.MARKERS, LISTING_BLOB, etag)
    except NotFound:
        return None
    if fresh is None:  # only when an ETag was sent, that is when one is kept
        if kept is None:
            raise StoreError(f"the dashboard listing {LISTING_BLOB} was not read")
        return kept
    data, new_etag = fresh
    listing = listing_from_bytes(data)
    with _listings_lock:
        _listings[container] = (new_etag, listing)
    return listing


def refresh_summary(store: Store, now: datetime) -> Summary:
    """Read every image row once and write the term index, the listing and the overview (in
    that order: a reader that finds the index newer than its listing reads the listing
    again)."""
    previous = read_overview(store)
    summary = summarize(_with_keys(store), now, previous.trend if previous is not None else (),
                        last_weekly_rescan(store), billing_months(store, now))
    for shard, data in enumerate(term_shards_to_bytes(summary.terms)):
        store.blobs.put(BlobKind.MARKERS, TERMS_BLOB.format(shard), data,
                        content_type="application/zstd")
    store.blobs.put(BlobKind.MARKERS, LISTING_BLOB, listing_to_bytes(summary.listing),
                    content_type="application/zstd")
    store.blobs.put(BlobKind.MARKERS, OVERVIEW_BLOB,
                    json.dumps(overview_to_json(summary.overview),
                               separators=(",", ":")).encode(),
                    content_type="application/json")
    log.info("dashboard summary: %d images, made at %s", summary.overview.images,
             now.isoformat())
    return summary


def refresh_after(store: Store, now: datetime, reason: str) -> None:
    """Refresh after a job changed what the dashboard shows; a failure is logged and left to
    the next timer run (within five minutes), never failing the job itself."""
    try:
        refresh_summary(store, now)
    except ScanError:
        log.exception("dashboard summary after %s failed; the timer makes it again", reason)


def overview_or_refresh(store: Store, now: datetime) -> Overview:
    """The stored overview; made now when there is none yet (a new installation)."""
    return read_overview(store) or refresh_summary(store, now).overview


def listing_or_refresh(store: Store, now: datetime) -> Listing:
    """The stored listing; made now when there is none yet."""
    return read_listing(store) or refresh_summary(store, now).listing


def _postings(store: Store, terms: Sequence[str]) -> tuple[datetime, frozenset[int]] | None:
    """The images having every one of ``terms``, and the summary's time; None before any
    term index was written."""
    found: frozenset[int] | None = None
    made_at: set[datetime] = set()
    for term in terms:
        try:
            shard = term_shard_from_bytes(store.blobs.get(
                BlobKind.MARKERS, TERMS_BLOB.format(term_shard(term))))
        except NotFound:
            return None
        made_at.add(shard.made_at)
        having = frozenset(shard.postings.get(term, ()))
        found = having if found is None else found & having
    if len(made_at) != 1 or found is None:  # shards of two summaries: one is being written
        return (datetime.min.replace(tzinfo=UTC), frozenset())
    return made_at.pop(), found


def images_with(store: Store, now: datetime, terms: Sequence[str]) -> tuple[Listing,
                                                                             tuple[ListedImage,
                                                                                   ...]]:
    """The listing and its images that have every one of ``terms`` (``vulnerability_term``,
    ``package_term``), in listing order. TransientStoreError while a summary is being
    written and the index and listing of one summary cannot be read together."""
    for _attempt in range(MAX_INDEX_READS):
        listing = listing_or_refresh(store, now)
        found = _postings(store, terms)
        if found is None:
            refresh_summary(store, now)
            continue
        made_at, positions = found
        if made_at == listing.made_at:
            return listing, tuple(listing.images[position] for position in sorted(positions)
                                  if position < len(listing.images))
    raise TransientStoreError("the dashboard summary is being written: reload in a few seconds")


def image_findings(store: Store, images: Sequence[ListedImage]
                   ) -> list[tuple[ImageRecord, tuple[PlatformFindings, ...]]]:
    """Each image's row and findings, read on ``ROW_READERS`` threads; images deleted since
    the summary left out."""
    def read(image: ListedImage) -> tuple[ImageRecord, tuple[PlatformFindings, ...]] | None:
        try:
            return store.findings.with_image(image.registry, image.repository, image.digest)
        except NotFound:
            return None

    return [found for found in _row_readers.map(read, images) if found is not None]
