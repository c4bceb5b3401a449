"""A scan with the Log Analytics export on sends the image's sub-assessments once the verdict
is stored (the upload itself is tested in tests/test_findings_export.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanning.findings_export import Uploader
from scanning.service import scan
from tests.integration.helpers import App, push_and_scan
from tests.test_findings_export import Received, endpoint, stub_upload  # noqa: F401

pytestmark = pytest.mark.integration


def test_scan_exports_its_sub_assessments(
        app: App, tmp_path: Path, endpoint: Received,  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch) -> None:
    def uploader(credential: Any) -> Uploader:
        return stub_upload

    monkeypatch.setattr(scan, "identity_uploader", uploader)
    digest = push_and_scan(app, tmp_path, "exported")
    (request,) = endpoint.requests
    assert sorted((row["Digest"], row["Repository"], row["Properties"]["displayName"],
                   row["Severity"]) for row in request["rows"]) == [
        (digest, "exported", "ITEST-0001", "High"),
        (digest, "exported", "ITEST-0002", "Medium"),
        (digest, "exported", "ITEST-0002", "Medium")]
