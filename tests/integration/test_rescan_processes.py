"""A large weekly rescan runs its chunks in spawned worker processes (Azurite, service level):
the workers rebuild their storage clients and the same index from the settings, re-match,
merge the rows and send the notifications; a pool that cannot start leaves the work to the
calling process, with the same result."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.index import compile_index, write_index
from scanning.analyzers import analyzer_set_version
from scanning.errors import AdvisoryError, StoreError
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.layer_types import LayerInfo
from scanning.local.services import Azurite
from scanning.model import AssessmentStatus, OSInfo, Package, PackageType, Platform, ScanTrigger
from scanning.service import rematch, rescan, workers
from scanning.service.context import Services
from scanning.service.evaluation import save_inventories
from scanning.store import Store
from scanning.store.advisory_index import publish_index
from scanning.store.scans import ScanFilter
from tests.integration.test_rescan_index_change import BASE, BUILT, _record

pytestmark = pytest.mark.integration

REGISTRY = "myacr.azurecr.io"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
IMAGES = 6  # even-numbered images have django 4.0, which PYSEC-3 affects


def digest(number: int) -> str:
    return f"sha256:{number:064x}"


@dataclass(slots=True)
class Registry:
    services: Services
    folder: Path

    def publish(self, records: list[dict[str, Any]], name: str) -> None:
        path = self.folder / f"{name}.idx"
        write_index(compile_index(records, built=BUILT), path)
        publish_index(self.services.store.clients.blob_service(), path)
        self.services.index.invalidate()

    def findings(self) -> list[list[str]]:
        return [sorted(finding.id for result in self.services.store.findings_of(REGISTRY, "app",
                                                                                digest(n))
                       for finding in result.findings) for n in range(IMAGES)]

    def notified(self) -> list[str]:
        return sorted(json.loads(body)["digest"] for body in self.services.queue.receive())


def seed_pulled_images(services: Services, images: int) -> None:
    """``images`` images pushed 20 days before NOW and pulled 2 days before, with requests
    2.0.0 and django (4.0 in the even-numbered ones, 4.2 in the others) in their inventory."""
    store = services.store
    for number in range(images):
        packages = [("requests", "2.0.0"), ("django", "4.0" if number % 2 == 0 else "4.2")]
        inventory = ImageInventory(
            reference=f"{REGISTRY}/app@{digest(number)}", image_digest=digest(number),
            manifest_digest=digest(number), config_digest=digest(number),
            platform=Platform(os="linux", architecture="amd64"),
            analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
            os=OSInfo(id="alpine", version_id="3.19.1"), layers=(LayerInfo(
                digest="sha256:" + "1" * 64, size=10),),
            packages=tuple(Package(type=PackageType.PYPI, name=name, version=version,
                                   purl=f"pkg:pypi/{name}@{version}",
                                   path=f"site-packages/{name}") for name, version in packages))
        store.images.record_push(registry=REGISTRY, repository="app", digest=digest(number),
                                 at=NOW - timedelta(days=20), tag=f"v{number}")
        save_inventories(services, REGISTRY, digest(number), (inventory,))
        store.record_pull(registry=REGISTRY, repository="app", digest=digest(number),
                          at=NOW - timedelta(days=2))


@pytest.fixture
def registry(azurite: Azurite, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """Six pulled images assessed against BASE (requests 2.0.0 in each: PYSEC-1)."""
    prefix = "p" + uuid.uuid4().hex[:12]
    # Environment, not monkeypatched functions: spawned workers read the same settings.
    monkeypatch.setenv("ADVISORY_CONTAINER", f"{prefix}-advisories")
    monkeypatch.setenv("NOTIFY_QUEUE_NAME", f"{prefix}-notifications")
    monkeypatch.setattr(rescan, "RESCAN_PROCESS_MIN_IMAGES", 1)
    monkeypatch.setattr(rescan, "RESCAN_CHUNK", 2)
    store = Store.from_connection_string(azurite.connection_string, prefix=prefix)
    services = Services.create(store)
    seed_pulled_images(services, IMAGES)
    result = Registry(services=services, folder=tmp_path)
    result.publish(BASE, "base")
    rescan.rescan_pulled(services, now=NOW - timedelta(days=7), processes=1)
    result.notified()  # the first assessment's notifications are not what these tests see
    yield result
    store.drop()


EXPECTED = [["PYSEC-1", "PYSEC-3"] if number % 2 == 0 else ["PYSEC-1"]
            for number in range(IMAGES)]


def test_worker_processes_rematch_merge_and_notify(registry: Registry,
                                                   caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    here: list[int] = []  # chunks re-matched in this process (spawned workers are unpatched)
    rescan_chunk = rematch.rescan_chunk

    def counted(*args: Any) -> Any:
        here.append(len(args[1]))
        return rescan_chunk(*args)

    monkeypatch.setattr(workers, "rescan_chunk", counted)
    registry.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    with caplog.at_level(logging.WARNING, logger="scanning.service.workers"):
        report = rescan.rescan_pulled(registry.services, now=NOW, processes=2)
    assert ((report.rematched, report.matched, report.rewritten, report.failed),
            registry.findings(), registry.notified(), caplog.messages, here) == (
        (6, 3, 3, 0), EXPECTED, [digest(0), digest(2), digest(4)], [], [])


def _failing_start(spec: object) -> None:
    raise AdvisoryError("the advisory index changed during the rescan")


def test_a_pool_that_cannot_start_leaves_the_work_to_the_caller(
        registry: Registry, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_start_worker", _failing_start)
    registry.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    with caplog.at_level(logging.WARNING, logger="scanning.service.workers"):
        report = rescan.rescan_pulled(registry.services, now=NOW, processes=2)
    assert ((report.rematched, report.matched, report.rewritten, report.failed),
            registry.findings(), registry.notified(),
            [message.split(" (")[0] for message in caplog.messages]) == (
        (6, 3, 3, 0), EXPECTED, [digest(0), digest(2), digest(4)],
        ["rescan worker process failed"] * 2)  # one per chunk: [0, 2] and [4]


@pytest.mark.parametrize(("batch", "writes"), [(2, [3, 2, 1]), (1600, [6])])
def test_history_is_written_as_chunks_finish_after_their_rows(
        registry: Registry, monkeypatch: pytest.MonkeyPatch, batch: int,
        writes: list[int]) -> None:
    # Three images are unaffected (django 4.2, the new record's key but not its range) and
    # three re-matched in two chunks ([0, 2] and [4]): with two rows a write, the settled
    # images' rows go once they are merged after the listing, a chunk's once it comes back,
    # the rest at the end.
    monkeypatch.setattr(rescan, "HISTORY_BATCH", batch)
    scans = registry.services.store.scans
    written: list[list[str]] = []
    record_finished = scans.record_finished

    def spied(records: Any) -> int:
        records = list(records)
        written.append(sorted(record.digest for record in records))
        return record_finished(records)

    monkeypatch.setattr(scans, "record_finished", spied)
    registry.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan.rescan_pulled(registry.services, now=NOW, processes=2)
    page = scans.list(ScanFilter(trigger=ScanTrigger.RESCAN), page_size=100)
    this_run = sorted((record.digest, record.outcome) for record in page.items
                      if record.started == NOW)
    assert ((report.rematched, report.unaffected, report.matched), [len(w) for w in written],
            sorted(digest for w in written for digest in w), this_run) == (
        (6, 3, 3), writes, [digest(n) for n in range(IMAGES)],
        [(digest(n), AssessmentStatus.UNHEALTHY) for n in range(IMAGES)])
    if batch == 2:
        assert written[0] == [digest(1), digest(3), digest(5)]
        assert written[1] == [digest(0), digest(2)]


def test_a_history_write_that_fails_fails_the_run(registry: Registry,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(records: Any) -> int:
        raise StoreError("recording scans: the table is gone")

    monkeypatch.setattr(rescan, "HISTORY_BATCH", 2)
    monkeypatch.setattr(registry.services.store.scans, "record_finished", failing)
    registry.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    with pytest.raises(StoreError, match="the table is gone"):
        rescan.rescan_pulled(registry.services, now=NOW, processes=2)
    # The rows merged before the failure keep their new findings.
    assert registry.findings() == EXPECTED
