"""The registry client against a scripted loopback registry: deadlines, retries with backoff
and Retry-After, bodies reset part way, resumed blob streams."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scanning.errors import ConfigError, DeadlineExceeded, LayerError, TransientRegistryError
from scanning.registry import (
    AcrSource,
    HttpRegistrySource,
    RegistryLimits,
    parse_retry_after,
)

CONFIG = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
CONFIG_DIGEST = f"sha256:{hashlib.sha256(CONFIG).hexdigest()}"
BLOB = bytes(range(256)) * 4096 * 3  # 3 MiB: three of the client's 1 MiB chunks
BLOB_DIGEST = f"sha256:{hashlib.sha256(BLOB).hexdigest()}"
FAST = RegistryLimits(backoff=0)
_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]*)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the scripted registry does with one request."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    cut_after: int | None = None  # send this many body bytes, then close the connection
    drip_seconds: float = 0.0  # send the body one byte at a time, this far apart
    pause_seconds: float = 0.0  # wait this long before answering at all
    honour_range: bool = True


class ScriptedRegistry:
    """Serves ``CONFIG`` and ``BLOB`` by digest; each request takes the next ``Answer`` of
    the script (a plain 200 once the script is used up) and is recorded."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, str]] = []  # path, Range header
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def _next(self, path: str, range_header: str) -> Answer:
        with self._lock:
            self.seen.append((path, range_header))
            return self.script.pop(0) if self.script else Answer()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                answer = registry._next(self.path, self.headers.get("Range", ""))
                if registry._stop.wait(answer.pause_seconds):
                    return
                body = CONFIG if self.path.endswith(CONFIG_DIGEST) else BLOB
                requested = _RANGE.fullmatch(self.headers.get("Range", ""))
                if answer.status == 200 and requested and answer.honour_range:
                    start = int(requested.group(1))
                    end = min(int(requested.group(2) or len(body) - 1), len(body) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                    body = body[start:end + 1]
                else:
                    self.send_response(answer.status)
                for key, value in answer.headers:
                    self.send_header(key, value)
                body = body if answer.status == 200 else b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self._write(body, answer)
                except OSError:
                    return  # the client gave up: what the drip tests want

            def _write(self, body: bytes, answer: Answer) -> None:
                if answer.cut_after is not None:
                    self.wfile.write(body[:answer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if answer.drip_seconds:
                    for offset in range(len(body)):
                        if registry._stop.wait(answer.drip_seconds):
                            return
                        self.wfile.write(body[offset:offset + 1])
                        self.wfile.flush()
                    return
                self.wfile.write(body)

        return Handler

    def __enter__(self) -> ScriptedRegistry:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *args: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Answer]], ScriptedRegistry]]:
    running: list[ScriptedRegistry] = []

    def start(script: list[Answer]) -> ScriptedRegistry:
        registry = ScriptedRegistry(script).__enter__()
        running.append(registry)
        return registry

    yield start
    for registry in running:
        registry.__exit__()


def source(registry: ScriptedRegistry, limits: RegistryLimits = FAST,
           sleeps: list[float] | None = None) -> HttpRegistrySource:
    record = sleeps.append if sleeps is not None else (lambda seconds: None)
    return HttpRegistrySource(registry.host, "org/img", limits=limits, sleep=record)


def test_config_cut_off_in_the_middle_of_its_body_is_fetched_again(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(cut_after=10)])
    assert (source(registry).fetch_blob(CONFIG_DIGEST, 1 << 20), len(registry.seen)) == (
        CONFIG, 2)


def test_retry_after_is_honoured_when_longer_than_the_backoff(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(status=429, headers=(("Retry-After", "3"),)),
                         Answer(status=503)])
    sleeps: list[float] = []
    source(registry, sleeps=sleeps).fetch_blob(CONFIG_DIGEST, 1 << 20)
    assert sleeps == [3.0, 0.0]


def test_retry_after_beyond_the_deadline_gives_up_at_once_and_stays_retryable(
        scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(status=503, headers=(("Retry-After", "120"),))])
    sleeps: list[float] = []
    with pytest.raises(TransientRegistryError) as raised:
        source(registry, sleeps=sleeps).fetch_blob(CONFIG_DIGEST, 1 << 20)
    assert (raised.value.retryable, sleeps, str(raised.value)) == (True, [], (
        f"{registry.host}: blob {CONFIG_DIGEST}: attempt 1 failed, and waiting 120.0 s more "
        f"would pass the 60 s deadline (last: GET /v2/org/img/blobs/{CONFIG_DIGEST}: "
        "HTTP 503)"))


def test_attempts_are_bounded(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(status=502)] * 10)
    with pytest.raises(TransientRegistryError, match="3 attempts failed"):
        source(registry, RegistryLimits(backoff=0, attempts=3)).fetch_blob(CONFIG_DIGEST, 100)
    assert len(registry.seen) == 3


def test_a_dripping_manifest_body_fails_at_its_deadline(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(drip_seconds=0.2)])
    limits = RegistryLimits(manifest_deadline=1.0, backoff=0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        source(registry, limits).fetch_blob(CONFIG_DIGEST, 1 << 20)
    elapsed = time.monotonic() - started
    assert (raised.value.retryable, str(raised.value).split(" (")[0], elapsed < 5) == (
        False, f"{registry.host}: blob {CONFIG_DIGEST} not received within its 1 s deadline",
        True)


def test_a_dripping_layer_is_a_layer_that_cannot_be_read(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(drip_seconds=0.2)])
    # 3 MiB at 3 MiB/s on top of a 0.5 s floor: 1.5 s in all.
    limits = RegistryLimits(blob_deadline_floor=0.5, blob_min_bytes_per_second=3 << 20,
                            backoff=0)
    started = time.monotonic()
    with pytest.raises(LayerError) as raised:
        b"".join(source(registry, limits).blob_chunks(BLOB_DIGEST))
    elapsed = time.monotonic() - started
    assert (str(raised.value).split(" (")[0], elapsed < 5) == (
        f"layer {BLOB_DIGEST} cannot be read: {registry.host}: blob {BLOB_DIGEST} not "
        "received within its 2 s deadline", True)


def test_a_blob_cut_off_part_way_resumes_from_where_it_stopped(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(cut_after=1536 << 10)])
    data = b"".join(source(registry).blob_chunks(BLOB_DIGEST))
    # The first whole 1 MiB chunk was passed on before the connection closed.
    assert (data == BLOB, [header for _, header in registry.seen]) == (
        True, ["", "bytes=1048576-"])


def test_a_blob_resumed_where_range_is_ignored_skips_what_was_passed_on(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(cut_after=1536 << 10), Answer(honour_range=False)])
    data = b"".join(source(registry).blob_chunks(BLOB_DIGEST))
    assert (data == BLOB, len(registry.seen)) == (True, 2)


class _Edge(random.Random):
    """A generator that always draws the top (or bottom) of the range."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


def test_backoff_doubles_with_half_of_it_jittered() -> None:
    limits = RegistryLimits(backoff=0.5, max_backoff=30)
    assert ([limits.delay(attempt, None, _Edge(top=False)) for attempt in (1, 2, 3, 8, 9)],
            [limits.delay(attempt, None, _Edge(top=True)) for attempt in (1, 2, 3, 8, 9)]) == (
        [0.25, 0.5, 1.0, 15.0, 15.0], [0.5, 1.0, 2.0, 30.0, 30.0])


@pytest.mark.parametrize(("header", "expected"), [
    ("7", 7.0),
    ("Thu, 03 Dec 2026 01:00:30 GMT", 30.0),
    ("Thu, 03 Dec 2026 00:59:00 GMT", 0.0),
    ("\uff17", None),  # a full-width digit seven
    ("-1", None),
    ("soon", None),
    ("", None),
])
def test_retry_after_is_seconds_or_an_http_date(header: str, expected: float | None) -> None:
    assert parse_retry_after(header, datetime(2026, 12, 3, 1, 0, 0, tzinfo=UTC)) == expected


def acr_source(registry: ScriptedRegistry, limits: RegistryLimits) -> AcrSource:
    """The ACR SDK client, anonymous over http, pointed at the scripted registry."""
    return AcrSource(registry.host, "org/img", credential=None,
                     endpoint=f"http://{registry.host}", limits=limits)


def test_acr_manifest_that_does_not_come_fails_at_its_deadline(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(pause_seconds=3)] * 5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        acr_source(registry, RegistryLimits(manifest_deadline=1.0)).fetch_manifest(CONFIG_DIGEST)
    elapsed = time.monotonic() - started
    assert (str(raised.value).split(" (")[0], elapsed < 5) == (
        f"{registry.host}: manifest {CONFIG_DIGEST} not received within its 1 s deadline", True)


def test_acr_blob_slower_than_its_deadline_is_a_layer_that_cannot_be_read(
        scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([Answer(pause_seconds=1.5)])
    limits = RegistryLimits(blob_deadline_floor=1.0, blob_min_bytes_per_second=1 << 30)
    with pytest.raises(LayerError) as raised:
        b"".join(acr_source(registry, limits).blob_chunks(BLOB_DIGEST))
    assert str(raised.value).split(" (")[0] == (
        f"layer {BLOB_DIGEST} cannot be read: {registry.host}: blob {BLOB_DIGEST} not received "
        "within its 1 s deadline")


def test_acr_blob_within_its_deadline_arrives_whole(scripted) -> None:  # type: ignore[no-untyped-def]
    registry = scripted([])
    limits = RegistryLimits(blob_deadline_floor=5.0)
    assert b"".join(acr_source(registry, limits).blob_chunks(BLOB_DIGEST)) == BLOB


def test_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("REGISTRY_MANIFEST_DEADLINE_SECONDS", "5"),
                        ("REGISTRY_BLOB_DEADLINE_SECONDS", "7.5"),
                        ("REGISTRY_BLOB_MIN_BYTES_PER_SECOND", "1000"),
                        ("REGISTRY_ATTEMPTS", "2")):
        monkeypatch.setenv(name, value)
    limits = RegistryLimits.from_settings()
    assert (limits.manifest_deadline, limits.blob_deadline(2000), limits.attempts) == (
        5.0, 9.5, 2)


@pytest.mark.parametrize(("name", "value"), [
    ("REGISTRY_MANIFEST_DEADLINE_SECONDS", "0"),
    ("REGISTRY_BLOB_DEADLINE_SECONDS", "inf"),
    ("REGISTRY_BLOB_DEADLINE_SECONDS", "nan"),
    ("REGISTRY_BLOB_MIN_BYTES_PER_SECOND", "-1"),
    ("REGISTRY_ATTEMPTS", "0"),
])
def test_limits_that_would_never_end_or_never_try_are_refused(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="must be positive"):
        RegistryLimits.from_settings()
