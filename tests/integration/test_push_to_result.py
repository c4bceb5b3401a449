"""A push reaches the Event Grid function, the scan runs, and the API shows the result; repeated
deliveries of the same push never scan or bill twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.helpers import App, build_alpine_image, findings_summary, wait_until

pytestmark = pytest.mark.integration

BASE_FINDINGS = [
    ("ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical", "Unhealthy"),
    ("ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
    ("ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
]


def _month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def test_push_is_scanned_and_the_api_returns_the_assessment(app: App, tmp_path: Path) -> None:
    digest = build_alpine_image(tmp_path / "layout", "push")
    app.push(tmp_path / "layout", "push", "v1")
    scan = app.wait_for_scan(digest)
    status, image = app.api(f"images/{digest}")
    assert status == 200
    assert (scan.output["status"], scan.output["findings"], scan.output["billed"]) == (
        "unhealthy", 3, True)
    assert {key: image[key] for key in ("registry", "repository", "digest", "tags", "platforms",
                                        "status", "firstScanTrigger", "deleted")} == {
        "registry": app.registry, "repository": "push", "digest": digest, "tags": ["v1"],
        "platforms": ["linux/amd64"], "status": "unhealthy", "firstScanTrigger": "push",
        "deleted": False}
    assert image["counts"]["active"] == {"critical": 1, "high": 0, "medium": 2, "low": 0,
                                         "negligible": 0, "unknown": 0}
    assert findings_summary(image) == BASE_FINDINGS


def test_first_scan_writes_one_billing_record(app: App, tmp_path: Path) -> None:
    digest = build_alpine_image(tmp_path / "layout", "billing")
    app.push(tmp_path / "layout", "billing", "v1")
    app.wait_for_scan(digest)
    status, billing = app.api(f"billing?month={_month()}")
    assert status == 200
    rows = [{key: row[key] for key in ("registry", "repository", "digest", "trigger",
                                       "unitPrice", "currency")} for row in billing["value"]]
    assert (billing["count"], billing["total"], rows) == (1, "0.29", [
        {"registry": app.registry, "repository": "billing", "digest": digest,
         "trigger": "push", "unitPrice": "0.29", "currency": "USD"}])


def test_repeated_deliveries_and_pushes_scan_and_bill_once(app: App, tmp_path: Path) -> None:
    digest = build_alpine_image(tmp_path / "layout", "duplicates")
    app.push(tmp_path / "layout", "duplicates", "v1")
    app.wait_for_scan(digest)
    # Event Grid delivers at least once: the same event twice...
    app.deliver_push(digest, "duplicates", "v1")
    app.deliver_push(digest, "duplicates", "v1")
    # ...and the same digest pushed again under another tag.
    app.push(tmp_path / "layout", "duplicates", "v2")
    wait_until(lambda: app.store.images.get(app.registry, "duplicates", digest).tags == ("v1",
                                                                                         "v2"),
               what="tag v2 recorded")
    app.wait_idle()
    _, billing = app.api(f"billing?month={_month()}")
    assert (len(app.instances_of(digest)), len(app.scans_of(digest)), billing["count"]) == (
        1, 1, 1)


def test_push_of_a_scanned_digest_under_a_new_tag_adds_the_tag(app: App,
                                                               tmp_path: Path) -> None:
    digest = build_alpine_image(tmp_path / "layout", "retag")
    app.push(tmp_path / "layout", "retag", "v1")
    app.wait_for_scan(digest)
    app.deliver_push(digest, "retag", "stable")
    _, image = app.api(f"images/{digest}")
    assert (image["tags"], image["status"]) == (["stable", "v1"], "unhealthy")
