"""Re-matching stored inventories for the weekly rescan: one run's shared state
(``RescanRun``), one image (``RescanRun.rematch``) and one chunk of images (``rescan_chunk``).
``scanning.service.rescan`` drives a run; ``scanning.service.workers`` spreads chunks over
processes.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scanning.advisories.index import (
    AdvisoryIndex,
    IndexChange,
    LookupKey,
    decode_key_fingerprints,
    diff_key_fingerprints,
)
from scanning.analyzers import analyzer_set_version
from scanning.errors import AdvisoryError, NotFound, ScanError
from scanning.inventory import ImageInventory
from scanning.matcher_version import matcher_version
from scanning.matching import Lookup, lookups_affected, unchanged_signatures
from scanning.model import AssessmentStatus, ScanTrigger
from scanning.rules import DisableRule
from scanning.service.context import Services, index_keys_name, record_index_keys
from scanning.service.evaluation import (
    evaluate,
    inventory_digest,
    notification,
    parse_inventories,
    send_notification,
)
from scanning.service.payloads import ScanRequest
from scanning.service.rules import load_rules
from scanning.store.blobs import BlobKind
from scanning.store.entities import bounded_text
from scanning.store.findings import Assessment, encode_findings
from scanning.store.images import ImageKey, ImageRecord, RowUpdate, image_key, inventory_columns
from scanning.store.match_keys import MatchKeys, read_match_keys
from scanning.store.scans import ScanRecord, new_scan_id
from scanning.store.store import Store

log = logging.getLogger(__name__)


# Decoded signatures kept between ``RescanRun.unaffected`` and ``row_keys``: one chunk of
# re-matches (``scanning.service.rescan.RESCAN_CHUNK``).
REMEMBERED_SIGNATURES = 100


def guarded(function: Any) -> Any:
    """``function`` with a ScanError returned as its text instead of raised (for pool.map)."""
    def run(target: Any) -> Any:
        try:
            return function(target)
        except ScanError as error:
            return f"error: {error}"
    return run


def rescan_id(moment: datetime, registry: str, digest: str) -> str:
    """The history's id format (time + 8 hex); deterministic per run and image, so a rerun of
    the same timer tick rewrites its record rather than adding a second."""
    return new_scan_id(moment, unique=f"rescan/{registry}/{digest}")


@dataclass(slots=True, kw_only=True)
class RescanRun:
    """What one rescan run knows once, for every image."""

    services: Services
    moment: datetime
    index: AdvisoryIndex
    index_version: str
    keys: dict[LookupKey, str]
    rules: tuple[DisableRule, ...]
    analyzer_version: str
    # Rules that expired before the run: an image assessed before the last of them expired
    # has findings disabled by a rule that no longer holds.
    last_expiry: datetime | None
    # This code's matcher (``scanning.matcher_version``): a row another one matched is
    # re-matched in full, whatever the index did.
    matcher_version: str = dataclasses.field(default_factory=matcher_version)
    changes: dict[str, IndexChange | None] = dataclasses.field(default_factory=dict)
    # Signed lookups ``unaffected`` decoded, by image and row ETag (rows written in one
    # transaction can share an ETag), for ``row_keys`` to take instead of decoding them
    # again when the image is re-matched in this process (~100 KB each: at most
    # ``REMEMBERED_SIGNATURES``, the oldest dropped). Off (``remember``) when the re-matches
    # run in worker processes.
    remember: bool = True
    decoded: dict[tuple[ImageKey, str], MatchKeys] = dataclasses.field(
        default_factory=dict)

    def change_since(self, index_version: str) -> IndexChange | None:
        """Keys changed from ``index_version`` to today's; None when unknown."""
        if index_version == self.index_version:
            return IndexChange()
        if index_version not in self.changes:
            try:
                old = decode_key_fingerprints(self.services.store.blobs.get(
                    BlobKind.INDEX_KEYS, index_keys_name(index_version)))
            except (NotFound, AdvisoryError) as error:
                log.info("rescan: no key fingerprints of index %s (%s): its images are "
                         "re-matched", index_version, error)
                self.changes[index_version] = None
            else:
                self.changes[index_version] = diff_key_fingerprints(old, self.keys)
        return self.changes[index_version]

    def unaffected(self, image: ImageRecord, etag: str = "") -> bool:
        """Whether today's index cannot change the image's stored assessment (``etag``: the
        row's, to remember its decoded signatures by for ``row_keys``)."""
        if (image.status is None or image.assessed_at is None
                or image.analyzer_version != self.analyzer_version
                or image.matcher_version != self.matcher_version
                or (self.last_expiry is not None and image.assessed_at < self.last_expiry)):
            return False
        if not image.match_keys:
            return False
        change = self.change_since(image.index_version)
        if change is not None and change.empty:
            # Nothing changed since the index it was assessed with: no lookup can be
            # affected, so its signatures are not decoded (a row whose column is unreadable
            # is re-matched at the next change, which has to decode them).
            return True
        keys = read_match_keys(image.match_keys)
        if keys is None:
            return False
        if change is not None and not lookups_affected(keys.signed, change, self.index):
            return True
        if self.remember and etag:
            if len(self.decoded) >= REMEMBERED_SIGNATURES:
                del self.decoded[next(iter(self.decoded))]
            self.decoded[image_key(image), etag] = keys
        return False

    def row_keys(self, image: ImageRecord, etag: str = "") -> MatchKeys | None:
        """The row's match keys (those ``unaffected`` decoded, when it kept them); None when
        absent, unreadable, or made by another analyzer set or another matcher."""
        if (image.analyzer_version != self.analyzer_version
                or image.matcher_version != self.matcher_version):
            return None
        keys = self.decoded.pop((image_key(image), etag), None) if etag else None
        return keys if keys is not None else read_match_keys(image.match_keys)

    def kept_signatures(self, image: ImageRecord, keys: MatchKeys | None) -> dict[Lookup, str]:
        """The row's lookup signatures (``keys``) that are still today's (none when they or
        the index the image was assessed with are unknown)."""
        change = self.change_since(image.index_version) if keys is not None else None
        if keys is None or change is None:
            return {}
        return unchanged_signatures(keys.signed, change, self.index)

    def read_inventories(self, image: ImageRecord, data: bytes, keys: MatchKeys | None,
                         ) -> tuple[tuple[ImageInventory, ...] | None, str, bool]:
        """The inventories of the document ``data``, its digest, and whether the row's match
        keys list its lookups (they were listed from this very document by today's rules).
        Then only the packages matching can use are built (``named_in``): the lookups of the
        others come from the keys."""
        digest = inventory_digest(data)
        lean = keys is not None and keys.inventory == digest
        return (parse_inventories(data, image.registry, image.digest,
                                  named_in=self.index if lean else None), digest, lean)

    def reanalysis(self, image: ImageRecord) -> ScanRequest:
        """The full re-analysis of an image the run cannot re-match (no inventory)."""
        return ScanRequest(registry=image.registry, repository=image.repository,
                           digest=image.digest, trigger=ScanTrigger.RESCAN,
                           requested_at=self.moment.isoformat())

    def settle_unaffected(self, image: ImageRecord,
                          etag: str) -> tuple[RowUpdate | None, ScanRecord]:
        """An ``unaffected`` image's row update (None when the row was assessed after this
        run's moment: it is newer than the run) and its history record."""
        scan_id = rescan_id(self.moment, image.registry, image.digest)
        update = (self.row_update(image, etag, scan_id)
                  if image.assessed_at is None or image.assessed_at <= self.moment else None)
        assert image.status is not None
        return update, self.history(image, scan_id, image.status, image.reason)

    def history(self, image: ImageRecord, scan_id: str, status: AssessmentStatus,
                reason: str) -> ScanRecord:
        return ScanRecord(id=scan_id, registry=image.registry, repository=image.repository,
                          digest=image.digest, trigger=ScanTrigger.RESCAN, started=self.moment,
                          finished=datetime.now(UTC), outcome=status,
                          error=reason if status is AssessmentStatus.FAILED else "")

    def row_update(self, image: ImageRecord, etag: str, scan_id: str,
                   match_keys: bytes | None = None) -> RowUpdate:
        changes: dict[str, Any] = {"index_version": self.index_version,
                                   "matcher_version": self.matcher_version,
                                   "assessed_at": self.moment, "last_scan_id": scan_id}
        if match_keys:
            changes["match_keys"] = match_keys
        return RowUpdate(registry=image.registry, repository=image.repository,
                         digest=image.digest, etag=etag, changes=changes,
                         expected={"current_generation": image.current_generation,
                                   "last_scan_id": image.last_scan_id})

    def rematch(self, image: ImageRecord, etag: str, copy: bytes | None = None,
                blob: bytes | None = None) -> ScanRequest | Rematched:
        """Re-match one image from its inventory: the row's copy (``copy``) when it has a
        usable one, else the blob (``blob`` when the caller read it already), whose bytes then
        become the row's copy with the merge. Unchanged findings move only the row's versions;
        changed ones come back as a merge of the whole assessment into the row (both batched
        by the caller), or are saved at once when the findings document lives in a blob."""
        store = self.services.store
        request = self.reanalysis(image)
        keys = self.row_keys(image, etag)
        inventories, digest, lean = (self.read_inventories(image, copy, keys) if copy
                                     else (None, "", False))
        fill: dict[str, Any] = {}
        if inventories is None:
            try:
                data = (blob if blob is not None
                        else store.blobs.get_inventory(image.registry, image.digest))
            except NotFound:
                return request
            inventories, digest, lean = self.read_inventories(image, data, keys)
            if inventories is None:
                return request
            fill = inventory_columns(data, image.inventory_chunks)
        scan_id = rescan_id(self.moment, image.registry, image.digest)
        evaluation = evaluate(
            inventories, request=request, rules=self.rules, index=self.index,
            moment=self.moment, signatures=self.kept_signatures(image, keys), inventory=digest,
            lookups=[lookup for lookup, _ in keys.signed] if lean and keys else None)
        verdict = evaluation.verdict
        encoded = encode_findings(image.digest, verdict.platforms)
        history = self.history(image, scan_id, verdict.status, verdict.reason)
        if (image.current_generation and encoded.fingerprint == image.findings_fingerprint
                and image.status is verdict.status
                and image.analysis_status is verdict.analysis
                and image.reason == bounded_text(verdict.reason)):
            update = self.row_update(image, etag, scan_id, evaluation.match_keys)
            return Rematched(history=history, update=dataclasses.replace(
                update, changes={**update.changes, **fill}))
        assessment = Assessment(
            status=verdict.status, analysis_status=verdict.analysis,
            assessed_at=self.moment, results=verdict.platforms, reason=verdict.reason,
            analyzer_version=self.analyzer_version, index_version=self.index_version,
            matcher_version=self.matcher_version, scan_id=scan_id, trigger=ScanTrigger.RESCAN,
            match_keys=evaluation.match_keys)
        previous = store.findings.previous_summary(image)
        message = notification(request, verdict, previous, image)
        changes = store.findings.rescan_changes(image, assessment, encoded)
        if changes is None:
            saved = store.findings.save(image.registry, image.repository, image.digest,
                                        assessment, encoded=encoded)
            if saved.applied and message is not None:
                send_notification(self.services, message)
            return Rematched(history=history, update=None)
        return Rematched(history=history, message=message, update=RowUpdate(
            registry=image.registry, repository=image.repository, digest=image.digest,
            etag=etag,
            changes={**changes, **fill},
            expected={"current_generation": image.current_generation,
                      "last_scan_id": image.last_scan_id}), rewritten=True)


def open_run(services: Services, moment: datetime) -> RescanRun:
    """A run at ``moment`` against today's index (its key fingerprints stored for later runs)
    and today's rules."""
    advisory_index, index_version = services.index.get()
    record_index_keys(services, advisory_index, index_version)
    rules = load_rules(services.store)
    expiries = [rule.expires for rule in rules
                if rule.expires is not None and rule.expires <= moment]
    return RescanRun(services=services, moment=moment, index=advisory_index,
                     index_version=index_version,
                     keys=services.index.key_fingerprints(advisory_index, index_version),
                     rules=rules, analyzer_version=analyzer_set_version(),
                     matcher_version=matcher_version(),
                     last_expiry=max(expiries) if expiries else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rematched:
    history: ScanRecord
    # The row merge to batch; None when the assessment was saved already.
    update: RowUpdate | None
    rewritten: bool = False  # the merge stores new findings (else: versions only)
    message: dict[str, Any] | None = None  # to send once the merge is applied


def merge_unaffected(store: Store, updates: list[RowUpdate]) -> ChunkReport:
    merged = store.images.merge_rows(updates)
    updates.clear()
    return ChunkReport(applied=len(merged.applied), dropped=len(merged.dropped))


@dataclass(slots=True, kw_only=True)
class ChunkReport:
    history: list[ScanRecord] = dataclasses.field(default_factory=list)
    reanalyze: list[ScanRequest] = dataclasses.field(default_factory=list)
    matched: int = 0
    rewritten: int = 0
    failed: int = 0
    applied: int = 0
    dropped: int = 0

    def add(self, other: ChunkReport) -> None:
        self.history.extend(other.history)
        self.reanalyze.extend(other.reanalyze)
        self.matched += other.matched
        self.rewritten += other.rewritten
        self.failed += other.failed
        self.applied += other.applied
        self.dropped += other.dropped


def _read_inventories(run: RescanRun, images: list[ImageRecord],
                      workers: int) -> dict[ImageKey, bytes]:
    """The inventory blobs of ``images``, read by ``workers`` threads (those without one, or
    whose read fails, are left out: the re-match reads them again and says why)."""
    blobs = run.services.store.blobs

    def read(image: ImageRecord) -> bytes | None:
        try:
            return blobs.get_inventory(image.registry, image.digest)
        except ScanError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(images)))) as pool:
        found = list(pool.map(read, images))
    return {image_key(image): data for image, data in zip(images, found, strict=True)
            if data is not None}


def rescan_chunk(run: RescanRun, chunk: list[tuple[ImageRecord, str]],
                  workers: int) -> ChunkReport:
    """Re-match a chunk of images, merge the rows of the chunk in batched transactions, then
    send the notifications of the merges that applied.

    The inventories come from the rows' copies (one query per partition); the blobs of the
    images without one are read first by ``workers`` threads. The re-matching itself, pure
    Python, runs on this thread alone: threads sharing the GIL for it cost ~12% more CPU and
    gain nothing."""
    report = ChunkReport()
    updates: list[RowUpdate] = []
    # Merges that store new findings, with the notification to send (or None).
    rewrites: dict[ImageKey, dict[str, Any] | None] = {}
    try:
        copies = run.services.store.images.inventory_copies(
            image_key(image) for image, _ in chunk if image.inventory_chunks)
    except ScanError as error:
        log.warning("rescan: inventory copies unreadable (%s): reading the blobs", error)
        copies = {}
    uncopied = [image for image, _ in chunk if image_key(image) not in copies]
    blobs = _read_inventories(run, uncopied, workers) if uncopied else {}
    rematch = guarded(lambda item: run.rematch(
        item[0], item[1], copies.get(image_key(item[0])), blobs.get(image_key(item[0]))))
    outcomes = [rematch(item) for item in chunk]
    for (image, _), outcome in zip(chunk, outcomes, strict=True):
        if isinstance(outcome, ScanRequest):
            report.reanalyze.append(outcome)
        elif isinstance(outcome, Rematched):
            report.matched += 1
            report.history.append(outcome.history)
            if outcome.update is None:
                report.rewritten += 1  # saved at once
            else:
                updates.append(outcome.update)
                if outcome.rewritten:
                    rewrites[image_key(image)] = outcome.message
        else:
            report.failed += 1
            log.warning("rescan of %s in %s failed: %s", image.digest, image.registry, outcome)
            report.history.append(run.history(
                image, rescan_id(run.moment, image.registry, image.digest),
                AssessmentStatus.FAILED, str(outcome)))
    merged = run.services.store.images.merge_rows(updates)
    report.applied, report.dropped = len(merged.applied), len(merged.dropped)
    for update in merged.applied:
        key = (update.registry, update.repository, update.digest)
        if key in rewrites:
            report.rewritten += 1
            message = rewrites[key]
            if message is not None:
                send_notification(run.services, message)
    return report


