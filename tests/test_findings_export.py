"""The optional Log Analytics export: the real ``LogsIngestionClient`` uploads an assessment's
rows to a loopback stub of the Logs Ingestion endpoint, which checks what arrives."""

from __future__ import annotations

import gzip
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from scanning.assessment import Verdict
from scanning.defender import LOCAL_RESOURCE_ID, MDVM_KEY
from scanning.findings_export import ExportTarget, export_assessment, export_rows, upload_rows
from scanning.model import AssessmentStatus, FindingCounts, PlatformFindings
from scanning.store import ImageRecord
from tests.test_subassessments import finding

RULE = "dcr-00000000000000000000000000000000"
STREAM = "Custom-AcrScanSubAssessments"
ASSESSED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
IMAGE = ImageRecord(registry="registry.local:5000", repository="team/api",
                    digest="sha256:" + "ab" * 32, tags=("1.0",), assessed_at=ASSESSED)
VERDICT = Verdict(platforms=(PlatformFindings(platform="linux/amd64",
                                              manifest_digest="sha256:" + "cd" * 32,
                                              findings=(finding(),)),),
                  status=AssessmentStatus.UNHEALTHY, analysis=AssessmentStatus.UNHEALTHY,
                  reason="", counts=FindingCounts())


@dataclass
class Received:
    status: int = 204
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture()
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append({
                "path": self.path, "encoding": self.headers["Content-Encoding"],
                "authorization": self.headers["Authorization"],
                "rows": json.loads(gzip.decompress(body))})
            self.send_response(received.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("FINDINGS_DCR_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("FINDINGS_DCR_RULE_ID", RULE)
    monkeypatch.delenv("FINDINGS_DCR_STREAM", raising=False)
    monkeypatch.delenv("REGISTRY_RESOURCE_IDS", raising=False)
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class StubToken(SansIOHTTPPolicy[Any, Any]):
    """The token policy, without Entra ID: the stub is plain http on loopback."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.http_request.headers["Authorization"] = "Bearer test-token"


class UnusedCredential:
    def get_token(self, *scopes: str, **options: Any) -> Any:
        raise AssertionError("the test policy sets the token")


def stub_upload(target: ExportTarget, rows: list[dict[str, Any]]) -> None:
    upload_rows(target, rows, UnusedCredential(), authentication_policy=StubToken())


def test_assessment_rows_reach_the_rules_stream_gzipped(endpoint: Received) -> None:
    sent = export_assessment(lambda: IMAGE, VERDICT, ASSESSED, stub_upload)
    (request,) = endpoint.requests
    (row,) = request["rows"]
    name = row["Name"]
    assert (sent, request["path"], request["encoding"], request["authorization"],
            uuid.UUID(name).version, {key: value for key, value in row.items()
                                      if key not in ("Name", "Properties")},
            row["Properties"]["additionalData"]["vulnerabilityDetails"]["cveId"]) == (
        1, f"/dataCollectionRules/{RULE}/streams/{STREAM}?api-version=2023-01-01", "gzip",
        "Bearer test-token", 5,
        {"TimeGenerated": "2026-11-21T10:00:00Z",
         "Id": f"{LOCAL_RESOURCE_ID}/providers/Microsoft.Security/assessments/{MDVM_KEY}"
               f"/subAssessments/{name}",
         "Type": "Microsoft.Security/assessments/subAssessments", "AssessmentKey": MDVM_KEY,
         "Registry": "registry.local:5000", "Repository": "team/api",
         "Digest": "sha256:" + "ab" * 32, "StatusCode": "Unhealthy", "Severity": "High"},
        "CVE-2023-5363")


def test_refused_upload_is_logged_and_does_not_raise(endpoint: Received,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    endpoint.status = 400
    assert export_assessment(lambda: IMAGE, VERDICT, ASSESSED, stub_upload) == 0
    assert [record.getMessage() for record in caplog.records
            if record.name == "scanning.findings_export"] == [
        "findings of registry.local:5000/team/api@sha256:" + "ab" * 32 + " not exported to "
        "Log Analytics: Logs Ingestion refused the rows: 400 Bad Request"]


def test_export_off_reads_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINDINGS_DCR_ENDPOINT", raising=False)

    def unread() -> ImageRecord:
        raise AssertionError("the image is read only when the export is on")

    def unsent(target: ExportTarget, rows: list[dict[str, Any]]) -> None:
        raise AssertionError("nothing is sent when the export is off")

    assert export_assessment(unread, VERDICT, ASSESSED, unsent) == 0


def test_rows_have_exactly_the_columns_the_table_declares() -> None:
    template = (Path(__file__).resolve().parents[1] / "infra" / "modules"
                / "findings-table.bicep").read_text()
    declared = re.findall(r"\{ name: '(\w+)', type: '\w+' \}", template)
    (row,) = export_rows(IMAGE, VERDICT, LOCAL_RESOURCE_ID, ASSESSED)
    assert list(row) == declared
