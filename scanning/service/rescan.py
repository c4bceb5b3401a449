"""The weekly rescan: every image pulled in the window, re-assessed against today's advisory
index from its stored inventory. No pull, no bill."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scanning.config import int_setting
from scanning.service.context import Services
from scanning.service.payloads import ScanRequest
from scanning.service.rematch import ChunkReport, merge_unaffected, open_run
from scanning.service.workers import ChunkRunner
from scanning.store.images import ImageRecord, RowUpdate, image_key
from scanning.store.scans import ScanRecord

log = logging.getLogger(__name__)

# Images to re-match are handled in chunks: each chunk's row merges are applied (in one
# transaction per registry) and its notifications sent before the next, so a run's memory
# does not grow with the number of images whose findings change.
RESCAN_CHUNK = 100
# Below this many pulled images, worker processes cost more to start than they save.
RESCAN_PROCESS_MIN_IMAGES = 400
# Row updates of unaffected images are merged every so many rows, while the listing goes on.
UNAFFECTED_BATCH = 1000
# History rows are written every so many rows while the run goes on: a run's rows spread over
# 16 partitions (``store.scans``), so about 100 rows, one full transaction, a partition.
HISTORY_BATCH = 1600


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanReport:
    """``rematched``: images now assessed against today's index, of which ``unaffected`` were
    proven unchanged without reading their inventory (their row was updated only),
    ``matched`` re-matched from their inventory and ``rewritten`` got new findings."""

    rematched: int
    to_reanalyze: tuple[ScanRequest, ...]
    failed: int
    unaffected: int = 0
    matched: int = 0
    rewritten: int = 0


def rescan_pulled(services: Services, *, now: datetime | None = None,
                  window_days: int | None = None, workers: int = 8,
                  processes: int | None = None) -> RescanReport:
    """Re-assess every image pulled in the window against today's index: no pull, no bill.

    Scan once, match many, and touch only what can change. Once per run: the pull ledger
    (one query), the image rows (one paged query), the inventory names (one listing), the
    rules, and today's index with its per-key fingerprints. Per image, from its row alone:

    * the index keys its packages are looked up by did not change since the index it was
      assessed with, or changed without changing what matches its package versions
      (``matching.lookups_affected``): its findings are what is stored, so only the row's
      ``index_version``, ``assessed_at`` and ``last_scan_id`` move, in batched merges of up
      to 100 rows of one registry;
    * otherwise its inventory is re-matched (read from the row's copy, one query per chunk,
      or from its blob the first time, which then leaves the copy); unchanged findings
      again only move the row,
      changed ones are merged into the row with the new assessment (its findings live in
      the row, ``store.findings``), both in batched transactions per chunk of
      ``RESCAN_CHUNK`` images, and notified when new once the merge applied. Large runs
      spread the chunks over ``processes`` worker processes (default: the setting
      ``RESCAN_PROCESSES``), each re-matching on one thread (threads read only the blobs
      of images without a copy);
    * no inventory, or one made by another analyzer set: returned for a full re-analysis
      (the caller starts those scans, also unbilled).

    Every re-assessed image gets its scan history row (trigger ``rescan``), written in
    transactions of 100 per partition, ``HISTORY_BATCH`` rows at a time as chunks finish
    (after their merges), while the worker processes re-match the next chunks; the rest at
    the end (all of them used to wait for the end of the run, which then spent seconds on
    them alone).
    """
    moment = now or datetime.now(UTC)
    store = services.store
    days = window_days if window_days is not None else int_setting("PULL_WINDOW_DAYS")
    # The three reads a run starts with go on at once: the inventory names (a blob listing) in
    # a thread, the pull ledger and today's index here.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rescan-names") as reader:
        names = reader.submit(store.blobs.inventory_names)
        try:
            pulled = {(entry.registry, entry.repository, entry.digest)
                      for entry in store.images_pulled_since(moment - timedelta(days=days))}
            run = open_run(services, moment)
        except BaseException:
            names.cancel()
            raise
        inventories = names.result() if pulled else frozenset()
    if processes is None:
        processes = int_setting("RESCAN_PROCESSES") or os.cpu_count() or 1
    # History rows whose image rows are merged, written HISTORY_BATCH at a time while the
    # run goes on; the unaffected images' wait in ``settled`` for their rows' merge.
    history: list[ScanRecord] = []
    settled: list[ScanRecord] = []

    # One thread writes them, so the transactions overlap the listing and the chunks' results.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rescan-history")
    writes: list[Future[int]] = []

    def write_history(at_least: int) -> None:
        if history and len(history) >= at_least:
            writes.append(writer.submit(store.scans.record_finished, list(history)))
            history.clear()

    def chunk_done(report: ChunkReport) -> None:
        # A chunk's rows are merged when its report comes back: its history can be written
        # while later chunks re-match.
        history.extend(report.history)
        report.history = []
        write_history(HISTORY_BATCH)

    def merge_settled() -> None:
        merged.add(merge_unaffected(store, updates))
        history.extend(settled)
        settled.clear()
        write_history(HISTORY_BATCH)

    runner = ChunkRunner(run, processes if len(pulled) >= RESCAN_PROCESS_MIN_IMAGES else 1,
                          workers, each=chunk_done)
    updates: list[RowUpdate] = []
    to_match: list[tuple[ImageRecord, str]] = []
    reanalyze: list[ScanRequest] = []
    merged = ChunkReport()
    unaffected = 0
    images = store.images.iter_with_etags() if pulled else iter(())
    try:
        for image, etag in images:
            if image_key(image) not in pulled:
                continue
            if store.blobs.inventory_name(image.registry, image.digest) not in inventories:
                reanalyze.append(run.reanalysis(image))
            elif run.unaffected(image, etag):
                unaffected += 1
                update, record = run.settle_unaffected(image, etag)
                if update is not None:
                    updates.append(update)
                settled.append(record)
            else:
                to_match.append((image, etag))
            if len(to_match) == RESCAN_CHUNK:
                runner.submit(to_match)
                to_match = []
            if len(updates) >= UNAFFECTED_BATCH:
                merge_settled()
        if to_match:
            runner.submit(to_match)
        merge_settled()
        totals = runner.finish()
        write_history(1)
        for write in writes:
            write.result()  # the first failed write fails the run, as it did before
    except BaseException:
        runner.abandon()
        raise
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
    totals.add(merged)
    reanalyze.extend(totals.reanalyze)
    log.info("weekly rescan: %d re-assessed (%d unaffected by the index change, %d re-matched, "
             "%d with new findings), %d rows updated in batches (%d superseded), %d to "
             "re-analyse, %d failed", unaffected + totals.matched, unaffected, totals.matched,
             totals.rewritten, totals.applied, totals.dropped, len(reanalyze), totals.failed)
    return RescanReport(rematched=unaffected + totals.matched, to_reanalyze=tuple(reanalyze),
                        failed=totals.failed, unaffected=unaffected, matched=totals.matched,
                        rewritten=totals.rewritten)
