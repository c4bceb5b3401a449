"""The rescan orchestration (Azurite, the in-process Durable runtime): chunk activities give
the same rows, history, findings and notifications as the in-process ``rescan_pulled``; a
chunk that fails for good is recorded and the others are kept; progress is readable."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning import api
from scanning.advisories.index import compile_index, write_index
from scanning.errors import StoreError
from scanning.functions import orchestration, rescans
from scanning.local.durable import Activity, DurableRuntime, Orchestrator
from scanning.local.host import (
    ACTIVITY_TRIGGER,
    ORCHESTRATION_TRIGGER,
    index_app,
    user_callable,
)
from scanning.local.services import Azurite
from scanning.service import fanout, rescan
from scanning.service.context import Services
from scanning.service.fanout import RescanStart
from scanning.store import Store
from scanning.store.advisory_index import publish_index
from tests.integration.test_rescan_index_change import BASE, BUILT, _record
from tests.integration.test_rescan_processes import NOW, REGISTRY, digest, seed_pulled_images

pytestmark = pytest.mark.integration

IMAGES = 7  # even-numbered images have django 4.0, which PYSEC-3 affects
CHANGED = [*BASE, _record("PYSEC-3", "django", "4.2")]
FAST = df.RetryOptions(first_retry_interval_in_milliseconds=10, max_number_of_attempts=2)


@dataclass(slots=True)
class Twin:
    """One store of the seven pulled images, assessed against BASE a week before NOW."""

    services: Services
    prefix: str

    def rows(self) -> list[tuple[Any, ...]]:
        images = [self.services.store.images.get(REGISTRY, "app", digest(n)) for n in range(IMAGES)]
        return [(image.status, image.index_version, image.last_scan_id, image.assessed_at,
                 image.counts) for image in images]

    def findings(self) -> list[list[str]]:
        store = self.services.store
        return [sorted(finding.id for result in store.findings_of(REGISTRY, "app", digest(n))
                       for finding in result.findings) for n in range(IMAGES)]

    def history(self) -> list[tuple[str, str, str, str]]:
        return sorted((scan.id, scan.digest, scan.trigger.value,
                       scan.outcome.value if scan.outcome else "")
                      for scan in self.services.store.scans.list(page_size=1000).items)

    def notified(self) -> list[str]:
        assert self.services.queue is not None
        return sorted(json.loads(body)["digest"] for body in self.services.queue.receive())


def _twin(azurite: Azurite, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Twin:
    monkeypatch.setenv("NOTIFY_QUEUE_NAME", f"{prefix}-notifications")
    store = Store.from_connection_string(azurite.connection_string, prefix=prefix)
    services = Services.create(store)
    seed_pulled_images(services, IMAGES)
    return Twin(services=services, prefix=prefix)


def _publish(twins: tuple[Twin, ...], records: list[dict[str, Any]], path: Path) -> None:
    write_index(compile_index(records, built=BUILT), path)
    publish_index(twins[0].services.store.clients.blob_service(), path)
    for twin in twins:
        twin.services.index.invalidate()


@pytest.fixture
def twins(azurite: Azurite, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Twin, Twin]]:
    """Two identical stores sharing one advisory index, so their index versions are equal."""
    base = "o" + uuid.uuid4().hex[:11]
    monkeypatch.setenv("ADVISORY_CONTAINER", f"{base}-advisories")
    monkeypatch.setattr(rescan, "RESCAN_CHUNK", 2)  # chunks of 4 re-match 2 at a time
    pair = (_twin(azurite, f"{base}a", monkeypatch), _twin(azurite, f"{base}b", monkeypatch))
    for name, records in (("base", BASE), ("django", CHANGED)):
        _publish(pair, records, tmp_path / f"{name}.idx")
        if name == "base":
            for twin in pair:
                rescan.rescan_pulled(twin.services, now=NOW - timedelta(days=7), processes=1)
                twin.notified()  # the first assessment's messages are not what these see
    yield pair
    for twin in pair:
        twin.services.store.drop()


def _runtime(services: Services, monkeypatch: pytest.MonkeyPatch) -> DurableRuntime:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(orchestration.bp)
    app.register_functions(rescans.bp)
    monkeypatch.setattr(rescans, "services", lambda: services)
    monkeypatch.setattr(rescans, "RETRY", FAST)
    index = index_app(app)
    return DurableRuntime(
        orchestrators={item.name: Orchestrator(name=item.name, function=user_callable(item))
                       for item in index.by_trigger(ORCHESTRATION_TRIGGER)},
        activities={item.name: Activity(name=item.name, function=user_callable(item),
                                        input_name=item.trigger_name)
                    for item in index.by_trigger(ACTIVITY_TRIGGER)},
        max_workers=4)


def _orchestrate(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> Any:
    runtime = _runtime(twin.services, monkeypatch)
    try:
        start = RescanStart(rescan_id="rescan-test", moment=NOW, window_days=30,
                            chunk_images=4, purpose="rescan/2025-03-10")
        runtime.start(rescans.RESCAN_ORCHESTRATOR, start.rescan_id, start.to_json())
        instance = runtime.wait(start.rescan_id, timeout=120)
        assert instance.status is df.OrchestrationRuntimeStatus.Completed, instance.output
        return instance.output
    finally:
        runtime.close()


def test_orchestration_equals_the_in_process_rescan(twins: tuple[Twin, Twin],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    in_process, orchestrated = twins
    report = rescan.rescan_pulled(in_process.services, now=NOW, processes=1)
    output = _orchestrate(orchestrated, monkeypatch)
    expected = [["PYSEC-1", "PYSEC-3"] if n % 2 == 0 else ["PYSEC-1"] for n in range(IMAGES)]
    assert ((report.rematched, report.unaffected, report.matched, report.rewritten,
             report.failed),
            (output["unaffected"] + output["matched"], output["unaffected"], output["matched"],
             output["rewritten"], output["failed"]),
            in_process.findings(), orchestrated.findings()) == (
        (7, 3, 4, 4, 0), (7, 3, 4, 4, 0), expected, expected)
    assert (orchestrated.rows(), orchestrated.history(), orchestrated.notified()) == (
        in_process.rows(), in_process.history(), in_process.notified())


def test_a_chunk_that_fails_for_good_is_recorded_and_the_others_kept(
        twins: tuple[Twin, Twin], monkeypatch: pytest.MonkeyPatch) -> None:
    _, orchestrated = twins
    real = fanout.rescan_planned_chunk

    def second_chunk_fails(services: Services, step: fanout.ChunkStep) -> fanout.RescanResult:
        if step.number == 1:
            raise StoreError("table service unavailable")
        return real(services, step)

    monkeypatch.setattr(fanout, "rescan_planned_chunk", second_chunk_fails)
    output = _orchestrate(orchestrated, monkeypatch)
    progress = fanout.rescan_progress(orchestrated.services.store, "rescan-test").to_json()
    # Chunk 0 (images 0-3) was re-assessed; chunk 1 (images 4-6) is counted as failed.
    assert ((output["unaffected"], output["matched"], output["failed"],
             len(output["failed_chunks"])), orchestrated.findings(),
            progress["chunks"], progress["images"]["failed"]) == (
        (2, 2, 3, 1),
        [["PYSEC-1", "PYSEC-3"], ["PYSEC-1"], ["PYSEC-1", "PYSEC-3"], ["PYSEC-1"],
         ["PYSEC-1"], ["PYSEC-1"], ["PYSEC-1"]],
        {"done": 2, "total": 2}, 3)


def test_progress_of_a_finished_rescan(twins: tuple[Twin, Twin],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, orchestrated = twins
    _orchestrate(orchestrated, monkeypatch)
    response = api.get_rescan(orchestrated.services.store, "rescan-test")
    assert (response.status, response.body) == (200, {
        "id": "rescan-test", "startedAt": "2025-03-10T12:00:00+00:00",
        "indexVersion": orchestrated.services.index.get()[1],
        "chunks": {"done": 2, "total": 2},
        "images": {"total": 7, "reassessed": 7, "unaffected": 3, "rematched": 4,
                   "newFindings": 4, "failed": 0, "toReanalyze": 0},
        "failedChunks": [], "complete": True})


def test_a_chunk_on_an_instance_holding_an_older_index_loads_the_plans(
        twins: tuple[Twin, Twin], tmp_path: Path) -> None:
    _, twin = twins
    # Another instance, which loaded today's index before the next one was published.
    stale = Services.open(twin.services.store)
    stale.index.get()
    _publish((twin,), [*CHANGED, _record("PYSEC-4", "requests", "2.2.0")],
             tmp_path / "requests.idx")
    plan = fanout.plan_rescan(twin.services, RescanStart(
        rescan_id="rescan-stale", moment=NOW, window_days=30, chunk_images=IMAGES,
        purpose="rescan/2025-03-10"))
    result = fanout.rescan_planned_chunk(stale, fanout.ChunkStep(plan=plan, number=0))
    assert (stale.index.get()[1], result.unaffected, result.matched, result.rewritten,
            result.failed) == (plan.index_version, 0, 7, 7, 0)


def test_a_new_plan_for_the_same_id_starts_with_no_chunk_done(
        twins: tuple[Twin, Twin], monkeypatch: pytest.MonkeyPatch) -> None:
    _, orchestrated = twins
    _orchestrate(orchestrated, monkeypatch)  # rescan-test: 2 chunks done
    fanout.plan_rescan(orchestrated.services, RescanStart(
        rescan_id="rescan-test", moment=NOW, window_days=30, chunk_images=4,
        purpose="rescan/2025-03-10"))
    progress = fanout.rescan_progress(orchestrated.services.store, "rescan-test").to_json()
    assert (progress["chunks"], progress["complete"]) == ({"done": 0, "total": 2}, False)
