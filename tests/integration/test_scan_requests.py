"""What a user sees around a scan: the image's status while its scan is queued and running, and
``POST scans`` with ``force`` scanning a scanned image again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanning.service import scan
from scanning.service.context import Services
from scanning.service.payloads import AssessStep, ScanStep
from tests.integration.helpers import App, build_alpine_image, push_and_scan, wait_until

pytestmark = pytest.mark.integration

HOLD_SECONDS = 30.0


def test_a_forced_scan_reassesses_a_scanned_image_without_billing_it_again(
        app: App, tmp_path: Path) -> None:
    repository = f"forced/{app.prefix}"
    digest = push_and_scan(app, tmp_path, repository)
    first = app.wait_for_scan(digest, repository=repository)
    pushed = app.api(f"images/{digest}")[1]["lastPushed"]
    status, body = app.api("scans", method="POST", body={
        "image": f"{app.registry}/{repository}@{digest}", "force": True})
    forced = app.host.durable.wait(body["id"], timeout=60)
    image = app.api(f"images/{digest}")[1]
    # A scan asked for is not a push: the push time stays the registry's.
    assert (status, body["id"] != first.instance_id, forced.output["status"],
            forced.output["billed"], [scan.trigger.value for scan in app.scans_of(digest)],
            image["lastScanId"], app.api("billing")[1]["count"], image["lastPushed"]) == (
        202, True, "unhealthy", False, ["push", "manual"], forced.output["scan_id"], 1, pushed)


def test_a_scan_request_without_force_returns_the_first_scan(app: App, tmp_path: Path) -> None:
    repository = f"unforced/{app.prefix}"
    digest = push_and_scan(app, tmp_path, repository)
    first = app.wait_for_scan(digest, repository=repository)
    status, body = app.api("scans", method="POST", body={
        "image": f"{app.registry}/{repository}@{digest}"})
    assert (status, body["id"], [scan.trigger.value for scan in app.scans_of(digest)]) == (
        202, first.instance_id, ["push"])


class Held:
    """Holds every scan of ``repository`` before it starts reading (``prepare_scan``) and
    before it assesses (``assess_image``) until released, so its states can be seen."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self.prepare = threading.Event()
        self.assess = threading.Event()

    def release(self) -> None:
        self.prepare.set()
        self.assess.set()


@pytest.fixture
def held(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    holder = Held(f"held/{app.prefix}")
    prepare, assess = scan.prepare_scan, scan.assess_image

    def held_prepare(services: Services, step: ScanStep) -> Any:
        if step.request.repository == holder.repository:
            holder.prepare.wait(HOLD_SECONDS)
        return prepare(services, step)

    def held_assess(services: Services, step: AssessStep) -> Any:
        if step.step.request.repository == holder.repository:
            holder.assess.wait(HOLD_SECONDS)
        return assess(services, step)

    # The orchestration's activities call these through the module (scan.prepare_scan).
    monkeypatch.setattr(scan, "prepare_scan", held_prepare)
    monkeypatch.setattr(scan, "assess_image", held_assess)
    try:
        yield holder
    finally:
        holder.release()  # a failing test must not leave a scan waiting


def _status(app: App, repository: str) -> tuple[str | None, str | None] | None:
    images = app.api(f"images?repository={repository}")[1]["value"]
    return (images[0]["status"], images[0]["scanState"]) if images else None


def test_an_image_is_queued_until_its_scan_runs(app: App, tmp_path: Path,
                                                held: Held) -> None:
    build_alpine_image(tmp_path / "layout", held.repository)
    app.push(tmp_path / "layout", held.repository, "v1")
    assert wait_until(lambda: _status(app, held.repository), what="image listed") == (
        "queued", "queued")


def test_an_image_is_scanning_while_its_scan_runs(app: App, tmp_path: Path,
                                                  held: Held) -> None:
    build_alpine_image(tmp_path / "layout", held.repository)
    app.push(tmp_path / "layout", held.repository, "v1")
    wait_until(lambda: _status(app, held.repository), what="image listed")
    held.prepare.set()
    assert wait_until(lambda: (status := _status(app, held.repository)) != ("queued", "queued")
                      and status, what="scan started") == ("scanning", "scanning")


def test_the_assessment_replaces_the_scan_state(app: App, tmp_path: Path, held: Held) -> None:
    digest = build_alpine_image(tmp_path / "layout", held.repository)
    app.push(tmp_path / "layout", held.repository, "v1")
    held.release()
    app.wait_for_scan(digest, repository=held.repository)
    assert _status(app, held.repository) == ("unhealthy", None)
