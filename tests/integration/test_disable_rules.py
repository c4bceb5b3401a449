"""A disable rule applies to stored results at once: no rescan, findings kept as disabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import App, build_alpine_image

pytestmark = pytest.mark.integration


def _scanned(app: App, tmp_path: Path, repository: str) -> str:
    digest = build_alpine_image(tmp_path / "layout", repository)
    app.push(tmp_path / "layout", repository, "v1")
    app.wait_for_scan(digest)
    return digest


def test_disable_rule_flips_the_image_to_healthy_at_once(app: App, tmp_path: Path) -> None:
    digest = _scanned(app, tmp_path, "ruled")
    _, unhealthy_before = app.api("images?status=unhealthy")
    status, _ = app.api("rules", method="POST", body={
        "id": "accept-ruled", "justification": "accepted risk for the integration test",
        "criteria": {"digest": digest}})
    _, healthy = app.api("images?status=healthy")
    _, unhealthy = app.api("images?status=unhealthy")
    assert (status, [image["digest"] for image in unhealthy_before["value"]],
            [image["digest"] for image in healthy["value"]], unhealthy["value"]) == (
        201, [digest], [digest], [])


def test_disabled_findings_stay_visible_as_disabled(app: App, tmp_path: Path) -> None:
    digest = _scanned(app, tmp_path, "visible")
    app.api("rules", method="POST", body={
        "id": "hide-openssl", "justification": "openssl is not reachable in this image",
        "criteria": {"vulnerabilityIds": ["ITEST-0002"]}})
    _, image = app.api(f"images/{digest}")
    shown = [(sub["properties"]["id"],
              sub["properties"]["additionalData"]["softwareDetails"]["packageName"],
              sub["properties"]["status"]) for sub in image["subAssessments"]]
    assert (image["status"], image["counts"]["activeTotal"], image["counts"]["disabledTotal"],
            len(app.scans_of(digest))) == ("unhealthy", 1, 2, 1)
    disabled = {"code": "NotApplicable", "severity": "Medium", "cause": "Exempt",
                "description": "Disabled by rule hide-openssl"}
    assert shown == [
        ("ITEST-0001", "musl", {"code": "Unhealthy", "severity": "Critical", "cause": None,
                                "description": ""}),
        ("ITEST-0002", "libcrypto3", disabled),
        ("ITEST-0002", "libssl3", disabled),
    ]
