"""Pushing a multi-platform index sends one untagged push per child, then the index: the index
is scanned once, for every platform, and the children end as covered by it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanning.ocibuild import OCI_INDEX
from tests.integration.helpers import AMD64, ARM64, App, build_alpine_image, findings_summary

pytestmark = pytest.mark.integration


def _pushed_index(app: App, tmp_path: Path, repository: str) -> tuple[str, list[str]]:
    """Push a two-platform index; its digest and its children's digests (amd64, arm64)."""
    digest = build_alpine_image(tmp_path / "layout", repository, platforms=(AMD64, ARM64))
    app.push(tmp_path / "layout", repository, "v1")
    app.wait_for_scan(digest)
    _, image = app.api(f"images/{digest}")
    children = [detail["manifestDigest"] for detail in image["platformDetails"]]
    for child in children:
        app.wait_for_scan(child)
    return digest, children


def test_index_is_assessed_once_for_every_platform(app: App, tmp_path: Path) -> None:
    digest, _ = _pushed_index(app, tmp_path, "multi")
    status, image = app.api(f"images/{digest}")
    findings = [(platform, *row) for platform, row in zip(
        [sub["properties"]["additionalData"]["artifactDetails"]["platform"]
         for sub in image["subAssessments"]], findings_summary(image), strict=True)]
    assert (status, image["mediaType"], image["platforms"], image["status"],
            len(app.scans_of(digest))) == (
        200, OCI_INDEX, ["linux/amd64", "linux/arm64/v8"], "unhealthy", 1)
    assert findings == [
        ("linux/amd64", "ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical", "Unhealthy"),
        ("linux/amd64", "ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("linux/amd64", "ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("linux/arm64/v8", "ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical",
         "Unhealthy"),
        ("linux/arm64/v8", "ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("linux/arm64/v8", "ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
    ]


def test_child_manifests_are_covered_by_the_index(app: App, tmp_path: Path) -> None:
    digest, children = _pushed_index(app, tmp_path, "children")
    outcomes = [app.wait_for_scan(child).output for child in children]
    assert outcomes == [{"status": "covered_by_index", "index": digest, "scan_id": ""}] * 2


def test_child_manifests_are_neither_stored_nor_billed_on_their_own(app: App,
                                                                    tmp_path: Path) -> None:
    digest, children = _pushed_index(app, tmp_path, "unbilled")
    _, images = app.api("images?repository=unbilled")
    _, billing = app.api(f"billing?month={datetime.now(UTC):%Y-%m}")
    child_lookups = [app.api(f"images/{child}")[0] for child in children]
    assert ([image["digest"] for image in images["value"]],
            [row["digest"] for row in billing["value"]], child_lookups,
            [len(app.scans_of(child)) for child in children]) == (
        [digest], [digest], [404, 404], [0, 0])
