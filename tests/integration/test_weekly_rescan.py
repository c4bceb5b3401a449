"""The weekly rescan re-matches stored inventories against today's index: findings follow the
new advisories, no layer is downloaded again, and nothing is billed."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scanning import USER_AGENT
from scanning.functions import timers
from scanning.ocibuild import OCI_MANIFEST
from scanning.store.blobs import BlobKind
from tests.integration.helpers import (
    FUNCTION_KEY,
    App,
    build_alpine_image,
    findings_summary,
    wait_until,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True, kw_only=True)
class Rescanned:
    repository: str
    digest: str
    blob_pulls_before: int
    blob_pulls_after: int


def _get_manifest(app: App, repository: str, user_agent: str) -> None:
    request = urllib.request.Request(
        f"http://{app.registry}/v2/{repository}/manifests/v1",
        headers={"Accept": OCI_MANIFEST, "User-Agent": user_agent})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _scanner_blob_pulls(app: App, repository: str, barrier: str) -> int:
    """Blob downloads by the scanner, counted once the notification ``barrier`` arrived.

    The registry sends notifications to an endpoint in order, so every pull made before the
    barrier's manifest GET has been delivered once the barrier has.
    """
    _get_manifest(app, repository, barrier)
    wait_until(lambda: any(event.user_agent == barrier
                           for event in app.stack.pulls.events(repository)),
               what=f"{barrier} notified")
    return sum(1 for event in app.stack.pulls.events(repository)
               if event.user_agent == USER_AGENT and not event.is_manifest)


@pytest.fixture
def rescanned(app: App, tmp_path: Path) -> Iterator[Rescanned]:
    """An image scanned, pulled by a client, then rescanned by the timer with a new index."""
    # A repository and image of this test's own: the registry and host outlive the test.
    repository = f"rescanned/{app.prefix}"
    digest = build_alpine_image(tmp_path / "layout", repository)
    app.push(tmp_path / "layout", repository, "v1")
    app.wait_for_scan(digest)
    _get_manifest(app, repository, "containerd/1.7.2")
    wait_until(lambda: app.store.pulls.get(app.registry, repository, digest),
               what="pull recorded")
    before = _scanner_blob_pulls(app, repository, "barrier-before/1")
    app.publish_index(app.stack.index_files.updated)
    request = urllib.request.Request(f"{app.host.base_url}/admin/functions/weekly_rescan",
                                     method="POST", data=b"{}",
                                     headers={"x-functions-key": FUNCTION_KEY})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202
    app.wait_idle()
    yield Rescanned(repository=repository, digest=digest, blob_pulls_before=before,
                    blob_pulls_after=_scanner_blob_pulls(app, repository, "barrier-after/1"))


def test_rescan_adds_findings_of_the_new_advisory(app: App, rescanned: Rescanned) -> None:
    _, image = app.api(f"images/{rescanned.digest}")
    assert (image["status"], findings_summary(image)) == ("unhealthy", [
        ("ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical", "Unhealthy"),
        ("ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("ITEST-0003", "busybox", "1.36.1-r5", "1.36.1-r9", "Low", "Unhealthy"),
    ])


def test_rescan_downloads_no_layer(rescanned: Rescanned) -> None:
    # The first scan read the config and both layers; the rescan read nothing.
    assert (rescanned.blob_pulls_before, rescanned.blob_pulls_after) == (3, 3)


def test_rescan_is_not_billed(app: App, rescanned: Rescanned) -> None:
    _, billing = app.api(f"billing?month={datetime.now(UTC):%Y-%m}")
    assert [(row["digest"], row["trigger"]) for row in billing["value"]] == [
        (rescanned.digest, "push")]


def test_rescan_is_in_the_scan_history(app: App, rescanned: Rescanned) -> None:
    history = [(scan.trigger.value, scan.outcome.value if scan.outcome else None, scan.error)
               for scan in app.scans_of(rescanned.digest)]
    assert history == [("push", "unhealthy", ""), ("rescan", "unhealthy", "")]


def _notifications(app: App) -> list[dict[str, object]]:
    queue = app.store.clients.queue_service().get_queue_client(f"{app.prefix}-notifications")
    return [json.loads(base64.b64decode(message.content))
            for message in queue.peek_messages(max_messages=32)]


def test_new_advisory_notifies_again_and_only_then(app: App, rescanned: Rescanned,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The first scan (unhealthy) sent one message, the rescan that found ITEST-0003 another;
    # next week's rescan, which changes nothing, sends none.
    _get_manifest(app, rescanned.repository, "containerd/1.7.2")
    next_week = datetime.now(UTC) + timedelta(days=7)
    monkeypatch.setattr(timers, "now", lambda: next_week)
    app.host.run_timer("weekly_rescan")
    app.wait_idle()
    messages = _notifications(app)
    assert ([message["digest"] for message in messages],
            [scan.trigger.value for scan in app.scans_of(rescanned.digest)]) == (
        [rescanned.digest] * 2, ["push", "rescan", "rescan"])


def test_a_repeated_timer_in_the_same_week_starts_nothing(app: App,
                                                          rescanned: Rescanned) -> None:
    app.host.run_timer("weekly_rescan")
    app.wait_idle()
    assert [scan.trigger.value for scan in app.scans_of(rescanned.digest)] == ["push", "rescan"]


def test_image_without_inventory_is_reanalysed_from_cached_layers(app: App,
                                                                  tmp_path: Path) -> None:
    repository = f"noinventory/{app.prefix}"
    digest = build_alpine_image(tmp_path / "layout", repository)
    app.push(tmp_path / "layout", repository, "v1")
    app.wait_for_scan(digest)
    _get_manifest(app, repository, "containerd/1.7.2")
    wait_until(lambda: app.store.pulls.get(app.registry, repository, digest),
               what="pull recorded")
    before = _scanner_blob_pulls(app, repository, "barrier-before/1")
    app.store.blobs.delete(BlobKind.INVENTORIES, app.store.blobs.inventory_name(app.registry,
                                                                             digest))
    app.host.run_timer("weekly_rescan")
    app.wait_idle()
    after = _scanner_blob_pulls(app, repository, "barrier-after/1")
    _, billing = app.api(f"billing?month={datetime.now(UTC):%Y-%m}")
    # The re-analysis read the image config again (one blob) but took the layers from the
    # layer cache.
    assert ([scan.trigger.value for scan in app.scans_of(digest)], before, after,
            billing["count"], app.store.blobs.has_inventory(app.registry, digest)) == (
        ["push", "rescan"], 3, 4, 1, True)
