"""The rescan as a Durable orchestration's activities: a plan, chunks, a summary.

``plan_rescan`` lists the pulled images once and writes the chunk plan (the image keys of
each chunk, ``RESCAN_CHUNK_IMAGES`` a chunk) to marker blobs; ``rescan_planned_chunk``
re-assesses one chunk exactly as ``scanning.service.rescan.rescan_pulled`` does, from the
index version the plan was made with, and writes its result beside the plan, so progress is
readable while the orchestration runs (``rescan_progress``) and a chunk that fails for good
loses nothing of the others; ``finish_rescan`` adds the results up. Every activity's input and
output is a frozen dataclass with a JSON codec, as in ``scanning.service.payloads``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scanning.errors import AdvisoryError, NotFound
from scanning.model import ScanTrigger
from scanning.service.context import Services
from scanning.service.payloads import ScanRequest
from scanning.service.rematch import ChunkReport, merge_unaffected, open_run, rescan_chunk
from scanning.service.rescan import RESCAN_CHUNK
from scanning.store.blobs import BlobKind
from scanning.store.images import ImageRecord, RowUpdate, image_key
from scanning.store.scans import ScanRecord
from scanning.store.store import Store

log = logging.getLogger(__name__)

# Threads a chunk overlaps its inventory reads with.
ROW_READERS = 8


def _marker(rescan_id: str, name: str) -> str:
    return f"rescans/{rescan_id}/{name}"


def _chunk_name(number: int) -> str:
    return f"chunk-{number:06d}.json"


def _result_name(number: int) -> str:
    return f"result-{number:06d}.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanStart:
    """The orchestration's input: its id, the run's moment and pull window, and the purpose
    the re-analyses' instance ids are made with."""

    rescan_id: str
    moment: datetime
    window_days: int
    chunk_images: int
    purpose: str

    def to_json(self) -> dict[str, Any]:
        return {"rescan_id": self.rescan_id, "moment": self.moment.isoformat(),
                "window_days": self.window_days, "chunk_images": self.chunk_images,
                "purpose": self.purpose}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RescanStart:
        return cls(rescan_id=str(data["rescan_id"]),
                   moment=datetime.fromisoformat(str(data["moment"])),
                   window_days=int(data["window_days"]), chunk_images=int(data["chunk_images"]),
                   purpose=str(data["purpose"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanPlan:
    """What ``plan_rescan`` wrote: ``chunks`` chunks of ``images`` pulled images with an
    inventory, re-assessed against ``index_version``; ``reanalyze`` more have none."""

    start: RescanStart
    index_version: str
    chunks: int
    images: int
    reanalyze: int

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.to_json(), "index_version": self.index_version,
                "chunks": self.chunks, "images": self.images, "reanalyze": self.reanalyze}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RescanPlan:
        return cls(start=RescanStart.from_json(data["start"]),
                   index_version=str(data["index_version"]), chunks=int(data["chunks"]),
                   images=int(data["images"]), reanalyze=int(data["reanalyze"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkStep:
    """One chunk activity's input."""

    plan: RescanPlan
    number: int

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json(), "number": self.number}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkStep:
        return cls(plan=RescanPlan.from_json(data["plan"]), number=int(data["number"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkFailure:
    """A chunk whose activity failed for good, and why."""

    step: ChunkStep
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step.to_json(), "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkFailure:
        return cls(step=ChunkStep.from_json(data["step"]), reason=str(data["reason"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanResult:
    """One chunk's result, or (from ``finish_rescan``) the sum of them all: images
    re-assessed (``unaffected`` without reading their inventory, ``matched`` from it,
    ``rewritten`` with new findings), ``failed`` images, the re-analyses to start, and the
    chunks that failed for good with their reasons."""

    unaffected: int = 0
    matched: int = 0
    rewritten: int = 0
    failed: int = 0
    reanalyze: tuple[ScanRequest, ...] = ()
    failed_chunks: tuple[str, ...] = ()

    @property
    def reassessed(self) -> int:
        return self.unaffected + self.matched

    def to_json(self) -> dict[str, Any]:
        return {"unaffected": self.unaffected, "matched": self.matched,
                "rewritten": self.rewritten, "failed": self.failed,
                "reanalyze": [request.to_json() for request in self.reanalyze],
                "failed_chunks": list(self.failed_chunks)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RescanResult:
        return cls(unaffected=int(data["unaffected"]), matched=int(data["matched"]),
                   rewritten=int(data["rewritten"]), failed=int(data["failed"]),
                   reanalyze=tuple(ScanRequest.from_json(item) for item in data["reanalyze"]),
                   failed_chunks=tuple(str(item) for item in data["failed_chunks"]))


def _put_json(services: Services, rescan_id: str, name: str, value: Any) -> None:
    services.store.blobs.put(BlobKind.MARKERS, _marker(rescan_id, name),
                             json.dumps(value, separators=(",", ":")).encode(),
                             content_type="application/json")


def _get_json(store: Store, rescan_id: str, name: str) -> Any:
    return json.loads(store.blobs.get(BlobKind.MARKERS, _marker(rescan_id, name)))


def plan_rescan(services: Services, start: RescanStart) -> RescanPlan:
    """List the images pulled in the window once (the pull ledger, the image rows, the
    inventory names) and write the chunk plan: the keys of ``chunk_images`` images with an
    inventory per chunk blob, and the re-analyses of those without one."""
    store = services.store
    # Results of an earlier instance of this id (it failed and the timer started it again)
    # would be counted as this run's progress.
    for name in store.blobs.names(BlobKind.MARKERS, _marker(start.rescan_id, "result-")):
        store.blobs.delete(BlobKind.MARKERS, name)
    _, index_version = services.index.get()
    pulled = {(entry.registry, entry.repository, entry.digest) for entry in
              store.images_pulled_since(start.moment - timedelta(days=start.window_days))}
    inventories = store.blobs.inventory_names() if pulled else frozenset()
    reanalyze: list[dict[str, str]] = []
    chunk: list[list[str]] = []
    chunks = images = 0
    if pulled:
        for image, _ in store.images.iter_with_etags(columns=("registry", "repository",
                                                              "digest")):
            if image_key(image) not in pulled:
                continue
            if store.blobs.inventory_name(image.registry, image.digest) not in inventories:
                reanalyze.append(ScanRequest(
                    registry=image.registry, repository=image.repository,
                    digest=image.digest, trigger=ScanTrigger.RESCAN,
                    requested_at=start.moment.isoformat()).to_json())
                continue
            chunk.append([image.registry, image.repository, image.digest])
            images += 1
            if len(chunk) == start.chunk_images:
                _put_json(services, start.rescan_id, _chunk_name(chunks), chunk)
                chunks, chunk = chunks + 1, []
    if chunk:
        _put_json(services, start.rescan_id, _chunk_name(chunks), chunk)
        chunks += 1
    _put_json(services, start.rescan_id, "reanalyze.json", reanalyze)
    plan = RescanPlan(start=start, index_version=index_version, chunks=chunks, images=images,
                      reanalyze=len(reanalyze))
    _put_json(services, start.rescan_id, "plan.json", plan.to_json())
    log.info("rescan %s: %d pulled images in %d chunks, %d to re-analyse", start.rescan_id,
             images, chunks, len(reanalyze))
    return plan


def rescan_planned_chunk(services: Services, step: ChunkStep) -> RescanResult:
    """Re-assess one chunk of the plan: the images the index change cannot affect get their
    row moved in batched merges, the others are re-matched ``RESCAN_CHUNK`` at a time, as in
    ``rescan_pulled``; then the chunk's history and its result are written.

    Raises AdvisoryError when today's index is not the plan's (it was refreshed during the
    run: the refresh's own re-assessment covers the images)."""
    plan = step.plan
    start = plan.start
    keys = _get_json(services.store, start.rescan_id, _chunk_name(step.number))
    run = open_run(services, start.moment)
    if run.index_version != plan.index_version:
        # This instance may hold the index it loaded before the plan's was published (the
        # source checks the blob once a minute): look again before giving up.
        services.index.invalidate()
        run = open_run(services, start.moment)
    if run.index_version != plan.index_version:
        raise AdvisoryError(f"the advisory index changed during rescan {start.rescan_id} "
                            f"({run.index_version} is not {plan.index_version})")
    chunk_keys = [(key[0], key[1], key[2]) for key in keys]
    found = services.store.images.rows_with_etags(chunk_keys)
    rows = [found[key] for key in chunk_keys if key in found]
    updates: list[RowUpdate] = []
    history: list[ScanRecord] = []
    to_match: list[tuple[ImageRecord, str]] = []
    totals = ChunkReport()
    unaffected = 0
    for image, etag in rows:
        if run.unaffected(image, etag):
            unaffected += 1
            update, record = run.settle_unaffected(image, etag)
            if update is not None:
                updates.append(update)
            history.append(record)
        else:
            to_match.append((image, etag))
        # Re-matched RESCAN_CHUNK at a time as they are found, while the signatures
        # ``unaffected`` decoded for them are still remembered.
        if len(to_match) == RESCAN_CHUNK:
            totals.add(rescan_chunk(run, to_match, ROW_READERS))
            to_match = []
    if to_match:
        totals.add(rescan_chunk(run, to_match, ROW_READERS))
    totals.add(merge_unaffected(services.store, updates))
    history.extend(totals.history)
    services.store.scans.record_finished(history)
    result = RescanResult(unaffected=unaffected, matched=totals.matched,
                          rewritten=totals.rewritten, failed=totals.failed,
                          reanalyze=tuple(totals.reanalyze))
    _put_json(services, start.rescan_id, _result_name(step.number), result.to_json())
    return result


def fail_chunk(services: Services, failure: ChunkFailure) -> RescanResult:
    """Record a chunk whose activity failed for good: its images count as failed."""
    start = failure.step.plan.start
    try:
        images = len(_get_json(services.store, start.rescan_id, _chunk_name(failure.step.number)))
    except NotFound:
        images = 0
    log.warning("rescan %s: chunk %d of %d images failed: %s", start.rescan_id,
                failure.step.number, images, failure.reason)
    result = RescanResult(failed=images, failed_chunks=(
        f"chunk {failure.step.number}: {failure.reason}",))
    _put_json(services, start.rescan_id, _result_name(failure.step.number), result.to_json())
    return result


def _results(store: Store, rescan_id: str) -> list[RescanResult]:
    names = store.blobs.names(BlobKind.MARKERS, _marker(rescan_id, "result-"))
    return [RescanResult.from_json(json.loads(store.blobs.get(BlobKind.MARKERS, name)))
            for name in sorted(names)]


def _sum(results: list[RescanResult], reanalyze: tuple[ScanRequest, ...]) -> RescanResult:
    return RescanResult(
        unaffected=sum(result.unaffected for result in results),
        matched=sum(result.matched for result in results),
        rewritten=sum(result.rewritten for result in results),
        failed=sum(result.failed for result in results),
        reanalyze=reanalyze + tuple(request for result in results
                                    for request in result.reanalyze),
        failed_chunks=tuple(reason for result in results for reason in result.failed_chunks))


def finish_rescan(services: Services, plan: RescanPlan) -> RescanResult:
    """The chunks' results added up, with every re-analysis to start."""
    rescan_id = plan.start.rescan_id
    planned = tuple(ScanRequest.from_json(item)
                    for item in _get_json(services.store, rescan_id, "reanalyze.json"))
    total = _sum(_results(services.store, rescan_id), planned)
    log.info("rescan %s: %d re-assessed (%d unaffected by the index change, %d re-matched, "
             "%d with new findings), %d to re-analyse, %d failed", rescan_id,
             total.reassessed, total.unaffected, total.matched, total.rewritten,
             len(total.reanalyze), total.failed)
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanProgress:
    """What ``GET /api/rescans/{id}`` shows: the plan and the chunks done so far."""

    plan: RescanPlan
    chunks_done: int
    done: RescanResult

    def to_json(self) -> dict[str, Any]:
        return {"id": self.plan.start.rescan_id, "startedAt": self.plan.start.moment.isoformat(),
                "indexVersion": self.plan.index_version,
                "chunks": {"done": self.chunks_done, "total": self.plan.chunks},
                "images": {"total": self.plan.images, "reassessed": self.done.reassessed,
                           "unaffected": self.done.unaffected, "rematched": self.done.matched,
                           "newFindings": self.done.rewritten, "failed": self.done.failed,
                           "toReanalyze": self.plan.reanalyze + len(self.done.reanalyze)},
                "failedChunks": list(self.done.failed_chunks),
                "complete": self.chunks_done == self.plan.chunks}


def rescan_progress(store: Store, rescan_id: str) -> RescanProgress:
    """The progress of rescan ``rescan_id`` from its marker blobs (NotFound before its plan
    is written): one read per chunk done, so linear in the chunks."""
    try:
        plan = RescanPlan.from_json(_get_json(store, rescan_id, "plan.json"))
    except NotFound:
        raise NotFound(f"no rescan {rescan_id}") from None
    results = _results(store, rescan_id)
    return RescanProgress(plan=plan, chunks_done=len(results), done=_sum(results, ()))
