"""Scans that no push event started: the catch-up job finds images an event never announced,
and ``POST /api/scans`` scans a reference on demand. Artifacts that are not images are
recorded as not applicable."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning.local.services import Registry, free_port, start_registry
from tests.integration.helpers import (
    App,
    build_alpine_image,
    push_raw_image,
    wait_until,
)

pytestmark = pytest.mark.integration

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


@pytest.fixture
def lonely_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of this test alone, without notifications: every push is a missed event."""
    registry = start_registry(tmp_path_factory.mktemp("lonely"), port=free_port())
    yield registry
    registry.stop()


def _billing(app: App) -> list[tuple[str, str]]:
    _, billing = app.api(f"billing?month={datetime.now(UTC):%Y-%m}")
    return [(row["digest"], row["trigger"]) for row in billing["value"]]


def test_catch_up_scans_images_whose_push_event_was_missed(
        app: App, tmp_path: Path, lonely_registry: Registry,
        monkeypatch: pytest.MonkeyPatch) -> None:
    digest = build_alpine_image(tmp_path / "layout", f"{app.prefix}/missed")
    app.push(tmp_path / "layout", "missed", "v1", registry=lonely_registry.host)
    monkeypatch.setenv("REGISTRIES", lonely_registry.host)
    app.host.run_timer("catch_up")
    app.wait_for_scan(digest, registry=lonely_registry.host)
    image = app.store.images.get(lonely_registry.host, "missed", digest)
    # A missed push event still makes this the image's first scan: it is billed, once.
    assert (image.status.value if image.status else None, image.first_scan_trigger,
            image.tags, _billing(app)) == ("unhealthy", "catchup", ("v1",),
                                           [(digest, "catchup")])


def test_on_demand_scan_returns_a_status_url_that_completes(
        app: App, tmp_path: Path, lonely_registry: Registry) -> None:
    digest = build_alpine_image(tmp_path / "layout", f"{app.prefix}/ondemand")
    app.push(tmp_path / "layout", "ondemand", "v1", registry=lonely_registry.host)
    status, started = app.api("scans", method="POST",
                              body={"image": f"{lonely_registry.host}/ondemand:v1"})

    def completed() -> dict[str, Any] | None:
        with urllib.request.urlopen(started["statusQueryGetUri"], timeout=30) as response:
            body = json.loads(response.read())
        return body if body["runtimeStatus"] == "Completed" else None

    outcome = wait_until(completed, 60, "on-demand scan completed")
    image = app.store.images.get(lonely_registry.host, "ondemand", digest)
    assert (status, outcome["output"]["status"], image.first_scan_trigger,
            _billing(app)) == (202, "unhealthy", "manual", [(digest, "manual")])


def test_helm_chart_is_not_applicable_and_not_billed(app: App) -> None:
    chart = push_raw_image(app.registry, "charts/demo", "1.0.0", layers=[b"chart"],
                           diff_ids=[], config_media_type=HELM_CONFIG,
                           layer_media_type=HELM_CHART)
    scan = app.wait_for_scan(chart)
    _, image = app.api(f"images/{chart}")
    assert (scan.output["status"], scan.output["billed"], image["status"], _billing(app),
            [(record.trigger.value, record.outcome.value if record.outcome else None)
             for record in app.scans_of(chart)]) == (
        "not_applicable", False, "not_applicable", [], [("push", "not_applicable")])
