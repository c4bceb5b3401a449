"""A tiny HTTP proxy in front of the registry that answers 503 to the first N matching GETs:
the transient failure a registry under load gives (Distribution spec: 5xx may be retried)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scanning.local.services import LOOPBACK

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "proxy-authorization", "proxy-authenticate"})


class FlakyProxy:
    """Forwards GET and HEAD to ``upstream``; the first ``failures`` GETs whose path contains
    ``fail_path`` get 503 instead."""

    def __init__(self, upstream: str, *, fail_path: str, failures: int) -> None:
        self.upstream = upstream
        self.fail_path = fail_path
        self._remaining = failures
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        daemon=True, name="flaky-proxy")

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def matching(self) -> list[int]:
        """Statuses of the GETs that matched ``fail_path``, in order."""
        with self._lock:
            return [status for method, path, status in self.requests
                    if method == "GET" and self.fail_path in path]

    def _should_fail(self, method: str, path: str) -> bool:
        with self._lock:
            if method == "GET" and self.fail_path in path and self._remaining > 0:
                self._remaining -= 1
                return True
            return False

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                if proxy._should_fail(self.command, self.path):
                    proxy._record(self.command, self.path, 503)
                    body = b'{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    headers = {key: value for key, value in self.headers.items()
                               if key.lower() not in _HOP_BY_HOP and key.lower() != "host"}
                    connection.request(self.command, self.path, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                    proxy._record(self.command, self.path, response.status)
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                finally:
                    connection.close()

            do_GET = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def flaky_proxy(upstream: str, *, fail_path: str, failures: int) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(upstream, fail_path=fail_path, failures=failures)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
