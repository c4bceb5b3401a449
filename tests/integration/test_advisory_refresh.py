"""The daily advisory refresh, from a local feed mirror (the air-gapped setup): it publishes
the new index, and the pulled images are re-assessed against it when it changed."""

from __future__ import annotations

import itertools
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.index import AdvisoryIndex
from scanning.functions import timers
from scanning.functions.rescans import reassessment_id
from scanning.ocibuild import OCI_MANIFEST
from scanning.service import maintenance
from tests.integration.helpers import (
    ADVISORIES,
    App,
    build_alpine_image,
    findings_summary,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def pulled_image(app: App, tmp_path: Path) -> str:
    """An image scanned with the base index, then pulled by a client."""
    repository = f"refreshed/{app.prefix}"
    digest = build_alpine_image(tmp_path / "layout", repository)
    app.push(tmp_path / "layout", repository, "v1")
    app.wait_for_scan(digest)
    request = urllib.request.Request(f"http://{app.registry}/v2/{repository}/manifests/v1",
                                     headers={"Accept": OCI_MANIFEST,
                                              "User-Agent": "containerd/1.7.2"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    wait_until(lambda: app.store.pulls.get(app.registry, repository, digest), what="pull recorded")
    return digest


@pytest.fixture
def feed_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<mirror>/Alpine/all.zip`` holding every fixture record, as osv.dev lays it out."""
    mirror = tmp_path / "mirror"
    (mirror / "Alpine").mkdir(parents=True)
    with zipfile.ZipFile(mirror / "Alpine" / "all.zip", "w") as archive:
        for record in sorted(ADVISORIES.rglob("*.json")):
            archive.write(record, record.name)
    monkeypatch.setenv("ADVISORY_FEED_URL", mirror.as_uri())
    monkeypatch.setenv("ADVISORY_ECOSYSTEMS", "Alpine")
    return mirror


def test_refresh_with_a_new_advisory_reassesses_pulled_images(
        app: App, pulled_image: str, feed_mirror: Path) -> None:
    app.host.run_timer("refresh_advisories")
    app.wait_idle()  # the re-assessment is an orchestration the timer started
    _, image = app.api(f"images/{pulled_image}")
    assert ([scan.trigger.value for scan in app.scans_of(pulled_image)],
            findings_summary(image)) == (["push", "rescan"], [
        ("ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical", "Unhealthy"),
        ("ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("ITEST-0003", "busybox", "1.36.1-r5", "1.36.1-r9", "Low", "Unhealthy"),
    ])


def test_refresh_without_changes_reassesses_nothing(app: App, pulled_image: str,
                                                    feed_mirror: Path) -> None:
    app.host.run_timer("refresh_advisories")
    app.host.run_timer("refresh_advisories")
    app.wait_idle()
    assert [scan.trigger.value for scan in app.scans_of(pulled_image)] == ["push", "rescan"]


def test_a_compiler_that_reads_the_same_records_otherwise_publishes_and_reassesses(
        app: App, pulled_image: str, feed_mirror: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A release whose parser reads ITEST-0003 as fixed in 1.36.1-r1 (the image has r5): no
    # record's modified moved, but busybox's key reads otherwise, so the index is published
    # and the image re-assessed without that finding. Both refreshes are in the same minute:
    # each publish starts its own re-assessment (the instance id names the published index).
    minute = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    seconds = itertools.count(1)
    monkeypatch.setattr(timers, "now", lambda: minute + timedelta(seconds=next(seconds)))
    app.host.run_timer("refresh_advisories")
    app.wait_idle()
    _, before = app.api(f"images/{pulled_image}")
    compile_feeds = maintenance.download_and_compile

    def otherwise(*args: Any, **options: Any) -> AdvisoryIndex:
        index = compile_feeds(*args, **options)
        for by_name in index.packages.values():
            for _, entry in by_name.get("busybox", ()):
                for compiled in entry["ranges"]["ranges"]:
                    compiled["events"] = [[kind, "1.36.1-r1" if kind == "fixed" else value]
                                          for kind, value in compiled["events"]]
        return index

    monkeypatch.setattr(maintenance, "download_and_compile", otherwise)
    app.host.run_timer("refresh_advisories")
    app.wait_idle()
    _, image = app.api(f"images/{pulled_image}")
    assert (len(findings_summary(before)), before["indexVersion"] != image["indexVersion"],
            [scan.trigger.value for scan in app.scans_of(pulled_image)],
            findings_summary(image)) == (4, True, ["push", "rescan", "rescan"], [
        ("ITEST-0001", "musl", "1.2.4-r1", "1.2.4-r2", "Critical", "Unhealthy"),
        ("ITEST-0002", "libcrypto3", "3.1.4-r0", "", "Medium", "Unhealthy"),
        ("ITEST-0002", "libssl3", "3.1.4-r0", "", "Medium", "Unhealthy"),
    ])
    # Each re-assessment is found under the id its publish named, against its own index.
    progress = [app.api("rescans/" + reassessment_id(
        app.store.prefix, minute + timedelta(seconds=second), version))
        for second, version in ((1, before["indexVersion"]), (2, image["indexVersion"]))]
    assert [(status, body["indexVersion"], body["complete"]) for status, body in progress] == [
        (200, before["indexVersion"], True), (200, image["indexVersion"], True)]
