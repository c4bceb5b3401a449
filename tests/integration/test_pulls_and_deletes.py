"""Pulls by clients feed the pull ledger (the scanner's own do not); a delete marks the image
deleted and stops its rescans, its history kept."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from scanning import USER_AGENT
from scanning.ocibuild import OCI_MANIFEST
from scanning.store.images import ImageRecord
from tests.integration.helpers import FUNCTION_KEY, App, push_and_scan, wait_until

pytestmark = pytest.mark.integration

CLIENT_USER_AGENT = "containerd/1.7.2"


def _registry_request(app: App, path: str, method: str = "GET") -> int:
    request = urllib.request.Request(
        f"http://{app.registry}/v2/{path}", method=method,
        headers={"Accept": OCI_MANIFEST, "User-Agent": CLIENT_USER_AGENT})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return int(response.status)


def _pull(app: App, repository: str, tag: str, digest: str) -> None:
    """A client pulls ``repository:tag``; wait until the ledger has it."""
    _registry_request(app, f"{repository}/manifests/{tag}")
    wait_until(lambda: app.store.pulls.get(app.registry, repository, digest),
               what="pull recorded")


def _run_timer(app: App, name: str) -> None:
    request = urllib.request.Request(f"{app.host.base_url}/admin/functions/{name}",
                                     method="POST", data=b"{}",
                                     headers={"x-functions-key": FUNCTION_KEY})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202


def test_client_pull_is_recorded_in_the_pull_ledger(app: App, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "pulled")
    _registry_request(app, "pulled/manifests/v1")

    def pulled() -> ImageRecord | None:
        # The ledger row is written first, then the image's last pull time.
        image = app.store.images.get(app.registry, "pulled", digest)
        return image if image.last_pulled else None

    image = wait_until(pulled, what="last pull recorded")
    entry = app.store.pulls.get(app.registry, "pulled", digest)
    assert entry is not None
    assert (entry.repository, entry.digest, entry.count, image.last_pulled) == (
        "pulled", digest, 1, entry.last_pulled)


def test_scanner_pulls_are_not_recorded(app: App, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "scanneronly")
    # The registry did notify the scanner's own manifest and blob pulls...
    own = wait_until(lambda: [event for event in app.stack.pulls.events("scanneronly")
                              if event.user_agent == USER_AGENT and event.is_manifest],
                     what="scanner pull notified")
    # ...and a later client pull is recorded, so every earlier notification was handled.
    _registry_request(app, "scanneronly/manifests/v1")
    entry = wait_until(lambda: app.store.pulls.get(app.registry, "scanneronly", digest),
                       what="pull recorded")
    assert ({event.digest for event in own}, entry.count) == ({digest}, 1)


def test_deleted_image_is_marked_deleted_and_keeps_its_history(app: App,
                                                               tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "deleted")
    assert _registry_request(app, f"deleted/manifests/{digest}", method="DELETE") == 202
    def deleted() -> ImageRecord | None:
        image = app.store.images.get(app.registry, "deleted", digest)
        return image if image.deleted else None

    image = wait_until(deleted, what="image marked deleted")
    status, body = app.api(f"images/{digest}")
    assert (status, body["deleted"], body["status"], image.deleted_at is not None,
            [scan.trigger.value for scan in app.scans_of(digest)]) == (
        200, True, "unhealthy", True, ["push"])


def test_weekly_rescan_skips_deleted_images(app: App, tmp_path: Path) -> None:
    kept = push_and_scan(app, tmp_path, "kept")
    deleted = push_and_scan(app, tmp_path, "gone")
    _pull(app, "kept", "v1", kept)
    _pull(app, "gone", "v1", deleted)
    _registry_request(app, f"gone/manifests/{deleted}", method="DELETE")
    wait_until(lambda: app.store.images.get(app.registry, "gone", deleted).deleted,
               what="image marked deleted")
    _run_timer(app, "weekly_rescan")
    app.wait_idle()
    assert {digest: [scan.trigger.value for scan in app.scans_of(digest)]
            for digest in (kept, deleted)} == {kept: ["push", "rescan"], deleted: ["push"]}
