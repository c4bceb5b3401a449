"""The Overview and Images pages as the server renders them from a stored summary (Azurite)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from scanning.dashboard import auth
from scanning.dashboard.pages import DashboardRequest, DashboardResponse, handle
from scanning.service.fanout import RescanPlan, RescanResult, RescanStart
from scanning.service.summary import refresh_summary
from scanning.store import BlobKind, Store
from tests.store.conftest import store

__all__ = ["store"]

pytestmark = pytest.mark.integration

KEY = "dashboard-test-key"
NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
RESCAN_ID = "rescan-p-2026-W49"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_KEY", KEY)


def _get(store: Store, path: str, **query: str) -> DashboardResponse:
    return handle(lambda: store, DashboardRequest(
        method="GET", path=path, query=query, form={},
        cookies={auth.SESSION_COOKIE: auth.session_value(KEY)}, headers={}), NOW)


def _marker(store: Store, name: str, value: object) -> None:
    store.blobs.put(BlobKind.MARKERS, f"rescans/{RESCAN_ID}/{name}", json.dumps(value).encode())


def test_overview_says_how_far_the_last_weekly_rescan_got(store: Store) -> None:
    plan = RescanPlan(start=RescanStart(rescan_id=RESCAN_ID, moment=NOW, window_days=30,
                                        chunk_images=500, purpose="rescan/2026-12-03"),
                      index_version="v1", chunks=3, images=1200, reanalyze=2)
    _marker(store, "plan.json", plan.to_json())
    for number, failed in enumerate((0, 4)):
        _marker(store, f"result-{number:06d}.json",
                RescanResult(unaffected=400, matched=100 - failed, rewritten=7,
                             failed=failed).to_json())
    refresh_summary(store, NOW)
    text = re.sub(r"<[^>]+>", "", _get(store, "").body)
    assert re.search(r"Last weekly rescan: [^\n]*?\.(?= ?Progress)", text).group(0) == (
        f"Last weekly rescan: {RESCAN_ID}, started 2026-12-03T04:00:00+00:00, running: 2 of 3 "
        "chunks, 996 of 1200 images re-assessed (14 with new findings, 4 failed), 2 to "
        "re-analyse.")


@pytest.mark.parametrize(("query", "message"), [
    ({"page": "2"}, "page 2 is past the last page (1) of these images"),
    ({"page": "x"}, "page must be a whole number from 1, got &#x27;x&#x27;"),
    ({"order": "sideways"}, "order must be asc or desc, got &#x27;sideways&#x27;"),
])
def test_images_page_refuses_wrong_input_with_the_reason(store: Store, query: dict[str, str],
                                                        message: str) -> None:
    response = _get(store, "images", **query)
    assert (response.status, re.findall(r'role="alert">([^<]*)<', response.body)) == (
        400, [message])
