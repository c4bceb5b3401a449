"""A storage account where no advisory index was ever published (a fresh ``local up`` before
it published one, a new deployment before the first refresh): a push ends ``unsupported`` with
the reason, not ``failed`` with a storage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import App, build_alpine_image, reset_singletons

pytestmark = pytest.mark.integration


def test_a_scan_without_an_index_is_unsupported_with_the_reason(
        app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISORY_CONTAINER", f"{app.prefix}-never-published")
    reset_singletons()
    digest = build_alpine_image(tmp_path / "layout", "noindex")
    app.push(tmp_path / "layout", "noindex", "v1")
    scan = app.wait_for_scan(digest)
    status, image = app.api(f"images/{digest}")
    assert (scan.output["status"], status, image["status"], image["reason"]) == (
        "unsupported", 200, "unsupported", "no advisory index published yet")
