"""A loopback HTTP proxy in front of a real registry that injects the faults a registry under
load gives: 429 and 503 answers, connections reset before the answer, bodies cut off part
way, slow bodies, and bodies dripped a byte at a time.

Which request gets which fault is decided by a ``Chooser`` from the request's method, path
and how many times that method and path were asked before; the seeded chooser makes whether
a request fails a pure function of the seed, so concurrent scans meet the same failures
whatever order their requests come in (which kind of fault is taken in turns). ``documents``
are served in place of the registry's content (by digest), for manifests no real registry
would store. Everything is bounded: the upstream call has a
timeout, a dripped body stops when the proxy stops, and the proxy serves only 127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scanning.local.services import LOOPBACK

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "proxy-authorization", "proxy-authenticate", "host"})
SLOW_PIECES = 4
SLOW_PAUSE = 0.05  # seconds between the pieces of a slow body: slow, well inside a deadline


class Fault(StrEnum):
    NONE = "none"
    TOO_MANY = "429"  # with Retry-After: 1
    UNAVAILABLE = "503"
    RESET = "reset"  # the connection reset before any answer
    CUT = "cut"  # the headers and half the body, then the connection closes
    SLOW = "slow"  # the body in a few pieces with pauses
    DRIP = "drip"  # the body one byte at a time, ``drip_seconds`` apart


Chooser = Callable[[str, str, int], Fault]  # method, path, earlier requests like it -> fault

TRANSIENT_FAULTS = (Fault.TOO_MANY, Fault.UNAVAILABLE, Fault.RESET, Fault.CUT, Fault.SLOW)


def first_failures(fail_path: str, failures: int) -> Chooser:
    """503 for the first ``failures`` GETs of each path containing ``fail_path``."""

    def choose(method: str, path: str, count: int) -> Fault:
        failing = method == "GET" and fail_path in path and count < failures
        return Fault.UNAVAILABLE if failing else Fault.NONE

    return choose


# Faults in a row on one request at most: fewer than the registry client's attempts
# (REGISTRY_ATTEMPTS, 4), so every transient fault is one the client must absorb. Without the
# cap a test's images (new digests each run) would now and then draw four faults in a row on
# one path, about 0.3^4 per path, and the test would fail by chance.
MAX_FAULTS_IN_A_ROW = 2


def seeded_faults(seed: int, rate: float, kinds: Sequence[Fault] = TRANSIENT_FAULTS) -> Chooser:
    """A fault on about ``rate`` of requests (the draw seeded per method, path and repeat),
    at most ``MAX_FAULTS_IN_A_ROW`` on one method and path. The kinds take turns, so a run
    with at least ``len(kinds)`` faults meets every kind whatever the paths (a test's images
    have new digests each run)."""
    turns = itertools.cycle(kinds)
    lock = threading.Lock()

    def choose(method: str, path: str, count: int) -> Fault:
        if count >= MAX_FAULTS_IN_A_ROW:
            return Fault.NONE
        if random.Random(f"{seed} {method} {path} {count}").random() >= rate:
            return Fault.NONE
        with lock:
            return next(turns)

    return choose


class FaultProxy:
    def __init__(self, upstream: str, choose: Chooser, *, drip_seconds: float = 0.5,
                 documents: Mapping[str, tuple[str, bytes]] | None = None) -> None:
        self.upstream = upstream
        self.choose = choose
        self.drip_seconds = drip_seconds
        self.documents = dict(documents or {})  # digest -> (media type, content)
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[Fault] = Counter()
        self.answers: list[tuple[str, str, int]] = []  # method, path, status (0: reset)
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="fault-proxy")

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def _fault_for(self, method: str, path: str) -> Fault:
        with self._lock:
            count = self._counts[(method, path)]
            self._counts[(method, path)] += 1
            fault = self.choose(method, path, count)
            self.injected[fault] += 1
            return fault

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.answers.append((method, path, status))

    def statuses(self, method: str, path_part: str) -> list[int]:
        """The statuses given to requests whose path contains ``path_part``, in order."""
        with self._lock:
            return [status for answered_method, path, status in self.answers
                    if answered_method == method and path_part in path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                fault = proxy._fault_for(self.command, self.path)
                if fault is Fault.RESET:
                    proxy._record(self.command, self.path, 0)
                    self._reset()
                    return
                if fault in (Fault.TOO_MANY, Fault.UNAVAILABLE):
                    status = 429 if fault is Fault.TOO_MANY else 503
                    proxy._record(self.command, self.path, status)
                    self._refuse(status)
                    return
                status, headers, body = self._upstream()
                proxy._record(self.command, self.path, status)
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    self._send_body(fault, body)
                except OSError:
                    return  # the client gave up (its deadline): nothing more to send

            def _upstream(self) -> tuple[int, list[tuple[str, str]], bytes]:
                digest = self.path.rsplit("/", 1)[-1]
                if digest in proxy.documents:
                    media_type, content = proxy.documents[digest]
                    return 200, [("Content-Type", media_type),
                                 ("Docker-Content-Digest", digest)], content
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    headers = {key: value for key, value in self.headers.items()
                               if key.lower() not in _HOP_BY_HOP}
                    connection.request(self.command, self.path, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                    kept = [(key, value) for key, value in response.getheaders()
                            if key.lower() not in _HOP_BY_HOP | {"content-length"}]
                    return response.status, kept, body
                finally:
                    connection.close()

            def _send_body(self, fault: Fault, body: bytes) -> None:
                if fault is Fault.CUT and len(body) > 1:
                    self.wfile.write(body[:len(body) // 2])
                    self.close_connection = True
                elif fault is Fault.SLOW:
                    step = max(1, -(-len(body) // SLOW_PIECES))
                    for offset in range(0, len(body), step):
                        self.wfile.write(body[offset:offset + step])
                        self.wfile.flush()
                        if proxy._stopping.wait(SLOW_PAUSE):
                            return
                elif fault is Fault.DRIP:
                    for offset in range(len(body)):
                        if proxy._stopping.wait(proxy.drip_seconds):
                            return
                        self.wfile.write(body[offset:offset + 1])
                        self.wfile.flush()
                else:
                    self.wfile.write(body)

            def _refuse(self, status: int) -> None:
                body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"try again"}]}'
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _reset(self) -> None:
                # SO_LINGER with a zero timeout: closing sends RST, not FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True

            do_GET = do_HEAD = _forward

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def no_faults(method: str, path: str, count: int) -> Fault:
    return Fault.NONE


@contextmanager
def fault_proxy(upstream: str, choose: Chooser = no_faults, *, drip_seconds: float = 0.5,
                documents: Mapping[str, tuple[str, bytes]] | None = None
                ) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, choose, drip_seconds=drip_seconds, documents=documents)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
