"""Rescans in worker processes.

Matching is pure Python: threads share one core. A large rescan spreads its chunks over
``RESCAN_PROCESSES`` worker processes (spawned, so nothing of the parent's threads or
connections is inherited); each builds its own storage clients from the same settings and
loads the same advisory index version, then re-matches, merges and notifies chunk by chunk.
A pool that cannot start (or dies) leaves its unfinished chunks to the calling process.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

from scanning.errors import AdvisoryError, ScanError
from scanning.rules import DisableRule
from scanning.service.context import Services
from scanning.service.rematch import ChunkReport, RescanRun, rescan_chunk
from scanning.store.clients import StorageClients, StorageSettings
from scanning.store.images import ImageRecord
from scanning.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class _RescanSpec:
    """What a worker process needs to rebuild the run (picklable)."""

    storage: StorageSettings
    prefix: str
    moment: datetime
    index_version: str
    rules: tuple[DisableRule, ...]
    analyzer_version: str
    matcher_version: str
    last_expiry: datetime | None


_worker_run: RescanRun | None = None


def _start_worker(spec: _RescanSpec) -> None:
    global _worker_run
    services = Services.open(Store(StorageClients(settings=spec.storage), spec.prefix))
    index, version = services.index.get()
    if version != spec.index_version:
        raise AdvisoryError(f"the advisory index changed during the rescan ({version} is not "
                            f"{spec.index_version})")
    # The keys let a re-match keep the signatures of lookups the index change left alone.
    _worker_run = RescanRun(services=services, moment=spec.moment, index=index,
                            index_version=version,
                            keys=services.index.key_fingerprints(index, version),
                            rules=spec.rules,
                            analyzer_version=spec.analyzer_version,
                            matcher_version=spec.matcher_version,
                            last_expiry=spec.last_expiry)


def _worker_chunk(chunk: list[tuple[ImageRecord, str]], workers: int) -> ChunkReport:
    assert _worker_run is not None, "worker process not started"
    return rescan_chunk(_worker_run, chunk, workers)


class ChunkRunner:
    """Runs chunks of a rescan as they are found: in worker processes when given more than
    one (started on the first chunk, so they start while the image rows are still being
    read), else in this process. ``finish`` waits for them; chunks whose worker failed, or a
    pool that could not start, are re-matched in this process then."""

    def __init__(self, run: RescanRun, processes: int, workers: int,
                 each: Callable[[ChunkReport], None] | None = None) -> None:
        self.run = run
        self.workers = workers
        # Called with each chunk's report as it is added to the totals (in submission order).
        self.each = each
        self.totals = ChunkReport()
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[tuple[list[tuple[ImageRecord, str]], Future[ChunkReport]]] = []
        if processes > 1:
            spec = _RescanSpec(storage=run.services.store.clients.settings,
                               prefix=run.services.store.prefix, moment=run.moment,
                               index_version=run.index_version, rules=run.rules,
                               analyzer_version=run.analyzer_version,
                               matcher_version=run.matcher_version,
                               last_expiry=run.last_expiry)
            self.pool = ProcessPoolExecutor(
                max_workers=processes, initializer=_start_worker, initargs=(spec,),
                mp_context=multiprocessing.get_context("spawn"))
            # Each process reads the blobs of images without an inventory copy with a few threads.
            self.workers = max(2, workers // processes)
            # Re-matches run in the workers: signatures decoded here are never taken.
            run.remember = False

    def submit(self, chunk: list[tuple[ImageRecord, str]]) -> None:
        if self.pool is None:
            self._add(rescan_chunk(self.run, chunk, self.workers))
            return
        try:
            self.futures.append((chunk, self.pool.submit(_worker_chunk, chunk, self.workers)))
        except (BrokenProcessPool, RuntimeError):
            self._add(rescan_chunk(self.run, chunk, self.workers))

    def _add(self, report: ChunkReport) -> None:
        if self.each is not None:
            self.each(report)
        self.totals.add(report)

    def abandon(self) -> None:
        """Stop the workers without waiting for their chunks (the run failed)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def finish(self) -> ChunkReport:
        if self.pool is None:
            return self.totals
        left: list[list[tuple[ImageRecord, str]]] = []
        try:
            for chunk, future in self.futures:
                try:
                    report = future.result()
                except (BrokenProcessPool, OSError, ScanError) as error:
                    log.warning("rescan worker process failed (%s): its %d images are "
                                "re-matched here", error, len(chunk))
                    left.append(chunk)
                else:
                    self._add(report)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for chunk in left:
            self._add(rescan_chunk(self.run, chunk, self.workers))
        return self.totals


