"""A registry that answers 503 for a while: the scan retries and completes.

The image sits in a registry without notifications, behind a proxy that fails the first
requests; the test delivers the push event naming the proxy, as ACR names its login server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.fault_proxy import fault_proxy, first_failures
from tests.integration.helpers import App, build_alpine_image, layout_layer_digests

pytestmark = pytest.mark.integration


def _pushed_quietly(app: App, tmp_path: Path, repository: str) -> tuple[str, list[str]]:
    """An image in the quiet registry: its digest and layer digests."""
    layout = tmp_path / "layout"
    digest = build_alpine_image(layout, f"{app.prefix}/{repository}")
    app.push(layout, repository, "v1", registry=app.stack.quiet_registry.host)
    return digest, layout_layer_digests(layout, digest)


def test_layer_download_failing_with_503_is_retried(app: App, tmp_path: Path) -> None:
    digest, layers = _pushed_quietly(app, tmp_path, "flakyblob")
    # Five 503s: more than the registry client's four attempts, so the layer read itself
    # is retried too.
    with fault_proxy(app.stack.quiet_registry.host,
                     first_failures(f"/blobs/{layers[1]}", 5)) as proxy:
        app.deliver_push(digest, "flakyblob", "v1", registry=proxy.host)
        scan = app.wait_for_scan(digest, registry=proxy.host)
        statuses = proxy.statuses("GET", f"/blobs/{layers[1]}")
    image = app.store.images.get(proxy.host, "flakyblob", digest)
    assert (scan.output["status"], scan.output["findings"], image.status.value if image.status
            else None, statuses) == ("unhealthy", 3, "unhealthy", [503] * 5 + [200])


def test_manifest_failing_with_503_is_retried_by_the_orchestration(app: App,
                                                                   tmp_path: Path) -> None:
    digest, _ = _pushed_quietly(app, tmp_path, "flakymanifest")
    # Four 503s exhaust the registry client's attempts in the first prepare_scan activity;
    # the orchestration's retry policy runs the activity again.
    with fault_proxy(app.stack.quiet_registry.host, first_failures("/manifests/", 4)) as proxy:
        app.deliver_push(digest, "flakymanifest", "v1", registry=proxy.host)
        scan = app.wait_for_scan(digest, registry=proxy.host)
        statuses = proxy.statuses("GET", "/manifests/")
    history = [(record.trigger.value, record.outcome.value if record.outcome else None)
               for record in app.scans_of(digest)]
    assert (scan.output["status"], statuses[:5], history) == (
        "unhealthy", [503] * 4 + [200], [("push", "unhealthy")])


def test_manifest_that_is_gone_fails_the_scan_without_retries(app: App) -> None:
    missing = "sha256:" + "0" * 64
    with fault_proxy(app.stack.quiet_registry.host, first_failures("/manifests/", 0)) as proxy:
        app.deliver_push(missing, "vanished", "v1", registry=proxy.host)
        scan = app.wait_for_scan(missing, registry=proxy.host)
        statuses = proxy.statuses("GET", "/manifests/")
    history = [(record.outcome.value if record.outcome else None, record.error)
               for record in app.scans_of(missing)]
    reason = f"{proxy.host}/vanished: manifests/{missing} not found"
    assert (scan.output["status"], scan.output["reason"], statuses, history) == (
        "failed", reason, [404], [("failed", reason)])
