"""The dashboard's summary is made by its timer and at the end of a rescan (local host)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanning.functions.rescans import weekly_rescan_id
from scanning.service.summary import read_overview
from tests.integration.helpers import App, push_and_scan

pytestmark = pytest.mark.integration


def test_the_timer_makes_the_summary(app: App, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "summary-timer")
    before = read_overview(app.store)
    app.host.run_timer("dashboard_summary")
    made = read_overview(app.store)
    assert (before, made.images if made else None, made.statuses if made else None) == (
        None, 1, (("unhealthy", 1),))


def test_a_weekly_rescan_ends_by_making_the_summary_with_its_progress(app: App,
                                                                     tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "summary-rescan")
    app.host.run_timer("weekly_rescan")
    app.wait_idle()
    made = read_overview(app.store)
    rescan = made.last_rescan if made else None
    assert (made.images if made else None, rescan.id if rescan else None,
            (rescan.chunks_done, rescan.chunks_total, rescan.complete) if rescan else None) == (
        1, weekly_rescan_id(app.prefix, datetime.now(UTC)), (0, 0, True))
