"""``Stack.settle_notifications``, which every test's teardown runs: once it returns, every
notification the registry queued before it has been handled by the host, so none of a test's
registry events reaches the host in the next test's storage namespace."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from scanning.ocibuild import OCI_MANIFEST
from tests.integration.helpers import BARRIER_REPOSITORY, App, build_alpine_image

pytestmark = pytest.mark.integration


def test_settling_waits_until_the_registry_events_before_it_are_handled(
        app: App, tmp_path: Path) -> None:
    digest = build_alpine_image(tmp_path / "settled", "settled")
    app.push(tmp_path / "settled", "settled", "v1")
    app.stack.settle_notifications()
    # The push's event has started its scan: looked up once, not waited for.
    assert app.first_scan(app.registry, digest) is not None
    app.wait_for_scan(digest)

    request = urllib.request.Request(
        f"http://{app.registry}/v2/settled/manifests/v1",
        headers={"Accept": OCI_MANIFEST, "User-Agent": "containerd/1.7.2"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    app.stack.settle_notifications()
    # The pull's notification was handled to its end (the ledger written) before the barrier's.
    entry = app.store.pulls.get(app.registry, "settled", digest)
    assert entry is not None and (entry.repository, entry.count) == ("settled", 1)
    # The barrier's own pulls are of a blob: they never enter the pull ledger.
    assert app.store.pulls.get(app.registry, BARRIER_REPOSITORY, app.stack.barrier_blob) is None
    assert len([event for event in app.stack.pulls.events(BARRIER_REPOSITORY)
                if event.user_agent.startswith("acr-scan-test-barrier/")]) >= 2
