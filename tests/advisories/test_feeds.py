"""Downloading OSV bulk zips: file:// mirrors, HTTP resume, failures keep the old copy."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.advisories.feeds import download_feed, feed_url
from scanning.errors import AdvisoryError


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as writer:
        writer.writestr("X-1.json", '{"id": "X-1"}' + " " * 5000)
    return buffer.getvalue()


PAYLOAD = _zip_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[dict[str, str]] = []
    cut_after: int | None = None  # close the connection after this many body bytes
    status: int = 200

    def do_GET(self) -> None:
        type(self).requests.append({k: v for k, v in self.headers.items()})
        if self.status != 200:
            self.send_error(self.status)
            return
        start = 0
        range_header = self.headers.get("Range", "")
        if range_header.startswith("bytes=") and self.headers.get("If-Range") == '"v1"':
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(body[: self.cut_after])
            type(self).cut_after = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.cut_after = None
    _Handler.status = 200
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_feed_url_encodes_the_ecosystem() -> None:
    assert feed_url("Red Hat", "https://mirror.example/osv/") == (
        "https://mirror.example/osv/Red%20Hat/all.zip"
    )


def test_file_base_copies_from_an_air_gapped_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "PyPI"
    mirror.mkdir(parents=True)
    (mirror / "all.zip").write_bytes(PAYLOAD)
    target = tmp_path / "cache" / "PyPI" / "all.zip"
    download_feed("PyPI", target, base=(tmp_path / "mirror").as_uri())
    assert target.read_bytes() == PAYLOAD


def test_interrupted_download_resumes_with_range_and_if_range(tmp_path: Path, server: str) -> None:
    target = tmp_path / "all.zip"
    _Handler.cut_after = 1000
    with pytest.raises(AdvisoryError):
        download_feed("PyPI", target, base=server)
    download_feed("PyPI", target, base=server)
    assert (
        target.read_bytes() == PAYLOAD,
        _Handler.requests[1].get("Range"),
        _Handler.requests[1].get("If-Range"),
    ) == (True, "bytes=1000-", '"v1"')


def test_failed_download_leaves_the_previous_copy(tmp_path: Path, server: str) -> None:
    target = tmp_path / "all.zip"
    target.write_bytes(b"previous")
    _Handler.status = 503
    with pytest.raises(AdvisoryError, match="HTTP 503") as raised:
        download_feed("PyPI", target, base=server)
    assert (target.read_bytes(), raised.value.retryable) == (b"previous", True)


def test_a_download_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "npm"
    mirror.mkdir(parents=True)
    (mirror / "all.zip").write_bytes(b"<html>not found</html>")
    target = tmp_path / "all.zip"
    with pytest.raises(AdvisoryError, match="not a zip archive"):
        download_feed("npm", target, base=(tmp_path / "mirror").as_uri())
    assert not target.exists()
