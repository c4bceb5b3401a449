"""``HTTPClientTransport`` against real local HTTP and HTTPS servers: what is sent, connection
reuse and the bounded pool, reconnecting after the server closes, and failures mapped to the
errors azure-core's retry policy retries."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scanning.local.services import free_port
from scanning.store import StorageClients
from scanning.store.queue import NotificationQueue
from scanning.store.transport import HTTPClientTransport


class _Recorder(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; records each request and the connection it came on. ``mode``:
    ``ok`` answers 201 with a small body, ``close`` answers and closes without saying so,
    ``big`` answers a body of ``big`` bytes, ``silent`` never answers."""

    protocol_version = "HTTP/1.1"
    mode: ClassVar[str] = "ok"
    big: ClassVar[int] = 0
    connections: ClassVar[int] = 0
    seen: ClassVar[list[tuple[int, str, str, bytes, str, str]]] = []
    hold: ClassVar[threading.Barrier | None] = None

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1
        self.number = type(self).connections

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.seen.append((self.number, self.command, self.path, body,
                         self.headers.get("x-test", ""), self.headers.get("Host", "")))
        if cls.hold is not None and len(cls.seen) <= cls.hold.parties:
            cls.hold.wait()
        if cls.mode == "silent":
            time.sleep(3)
            self.close_connection = True
            return
        data = b"x" * cls.big if cls.mode == "big" else b"<ok/>"
        self.send_response(201)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-ms-request-id", f"r{len(cls.seen)}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if cls.mode == "close":
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    _Recorder.mode, _Recorder.big, _Recorder.connections, _Recorder.seen = "ok", 0, 0, []
    _Recorder.hold = None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder))


def _post(transport: HTTPClientTransport, url: str, body: bytes = b"hello") -> Any:
    return transport.send(HttpRequest("POST", url, headers={"x-test": "yes"}, content=body))


def test_requests_on_one_thread_share_one_connection_and_arrive_as_sent(port: int) -> None:
    transport = HTTPClientTransport()
    answers = [_post(transport, f"http://127.0.0.1:{port}/acct/q/messages?timeout=5",
                     f"m{n}".encode()) for n in range(3)]
    assert [(a.status_code, a.reason, a.body(), a.headers["X-MS-REQUEST-ID"], a.content_type)
            for a in answers] == [
        (201, "Created", b"<ok/>", f"r{n}", "application/xml") for n in (1, 2, 3)]
    assert _Recorder.seen == [
        (1, "POST", "/acct/q/messages?timeout=5", f"m{n}".encode(), "yes", f"127.0.0.1:{port}")
        for n in range(3)]
    transport.close()


def test_concurrent_requests_open_a_connection_each_and_only_max_idle_stay_open(
        port: int) -> None:
    # The server holds the first four requests until all four have arrived: four connections.
    _Recorder.hold = threading.Barrier(4, timeout=5)
    transport = HTTPClientTransport(max_idle=2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda n: _post(transport, f"http://127.0.0.1:{port}/",
                                                 f"c{n}".encode()).status_code, range(4)))
    assert (statuses, _Recorder.connections, transport.idle_connections()) == (
        [201] * 4, 4, 2)
    # Sequential requests, from threads that come and go, reuse the idle connections.
    for _ in range(6):
        thread = threading.Thread(target=_post, args=(transport, f"http://127.0.0.1:{port}/"))
        thread.start()
        thread.join()
    assert (len(_Recorder.seen), _Recorder.connections, transport.idle_connections()) == (
        10, 4, 2)
    transport.close()
    assert transport.idle_connections() == 0


def test_an_idle_connection_the_server_closed_is_replaced_before_it_is_used(
        port: int) -> None:
    # The server closes after each answer without saying so (a keep-alive timeout).
    _Recorder.mode = "close"
    transport = HTTPClientTransport()
    statuses = []
    for n in range(3):
        statuses.append(_post(transport, f"http://127.0.0.1:{port}/", f"m{n}".encode())
                        .status_code)
        time.sleep(0.2)  # the server's close arrives
    assert statuses == [201, 201, 201]
    assert [(number, body) for number, _, _, body, _, _ in _Recorder.seen] == [
        (1, b"m0"), (2, b"m1"), (3, b"m2")]


def test_a_request_on_a_connection_closed_under_it_is_retried_on_a_new_one(port: int) -> None:
    # The close races the next request: whichever attempt meets the closed connection fails
    # as an azure-core error the retry policy retries (for a POST when told to).
    _Recorder.mode = "close"
    pipeline = Pipeline(HTTPClientTransport(), policies=[RetryPolicy(retry_backoff_factor=0)])
    statuses = [pipeline.run(HttpRequest("POST", f"http://127.0.0.1:{port}/",
                                         content=f"m{n}".encode()),
                             retry_on_methods=frozenset({"POST"})).http_response.status_code
                for n in range(20)]
    assert statuses == [201] * 20
    assert [(number, body) for number, _, _, body, _, _ in _Recorder.seen] == [
        (n + 1, f"m{n}".encode()) for n in range(20)]


def test_refused_connection_is_a_request_error() -> None:
    with pytest.raises(ServiceRequestError) as raised:
        _post(HTTPClientTransport(), f"http://127.0.0.1:{free_port()}/")
    assert "ConnectionRefusedError" in str(raised.value)


def test_an_unanswered_request_is_a_response_error_after_the_read_timeout(port: int) -> None:
    _Recorder.mode = "silent"
    transport = HTTPClientTransport(read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ServiceResponseError) as raised:
        _post(transport, f"http://127.0.0.1:{port}/")
    elapsed = time.monotonic() - started
    assert (str(raised.value), 0.3 <= elapsed < 2.0) == ("TimeoutError: timed out", True)


def test_an_answer_over_the_cap_is_a_response_error_and_the_connection_is_dropped(
        port: int) -> None:
    _Recorder.mode, _Recorder.big = "big", 2049
    transport = HTTPClientTransport(max_body=2048)
    with pytest.raises(ServiceResponseError) as raised:
        _post(transport, f"http://127.0.0.1:{port}/q")
    assert str(raised.value) == "answer of POST /q over 2048 bytes"
    _Recorder.big = 2048
    assert len(_post(transport, f"http://127.0.0.1:{port}/q").body()) == 2048
    assert [number for number, *_ in _Recorder.seen] == [1, 2]


def test_an_unknown_scheme_is_a_request_error() -> None:
    with pytest.raises(ServiceRequestError) as raised:
        _post(HTTPClientTransport(), "ftp://127.0.0.1/")
    assert str(raised.value) == "unsupported URL scheme 'ftp'"


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server with a certificate for 127.0.0.1 signed by its own CA (the CA's file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acr-scan test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = (tmp_path / "ca.pem", tmp_path / "cert.pem",
                                    tmp_path / "key.pem")
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for port in _serve(server):
        yield port, ca_file


def test_https_is_verified_against_the_given_ca_bundle(tls: tuple[int, Path]) -> None:
    port, ca_file = tls
    transport = HTTPClientTransport(connection_verify=str(ca_file))
    assert [_post(transport, f"https://127.0.0.1:{port}/s").status_code for _ in range(2)] == [
        201, 201]
    assert [number for number, *_ in _Recorder.seen] == [1, 1]


def test_https_with_an_unknown_ca_is_a_request_error(tls: tuple[int, Path]) -> None:
    port, _ = tls
    with pytest.raises(ServiceRequestError) as raised:
        _post(HTTPClientTransport(), f"https://127.0.0.1:{port}/s")
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert _Recorder.seen == []


def test_the_queue_sends_over_http_client_unless_a_proxy_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clients = StorageClients.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;"
        "QueueEndpoint=http://127.0.0.1:1/acct")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = NotificationQueue(clients, "notify")._send_pipeline()
    asked = NotificationQueue(clients, "notify", use_requests=True)._send_pipeline()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    proxied = NotificationQueue(clients, "notify")._send_pipeline()
    assert direct is not None and asked is not None and proxied is not None
    assert (type(direct._transport), type(asked._transport), type(proxied._transport)) == (
        HTTPClientTransport, RequestsTransport, RequestsTransport)


def test_per_call_timeouts_override_the_transports(port: int) -> None:
    _Recorder.mode = "silent"
    transport = HTTPClientTransport(read_timeout=5.0)
    started = time.monotonic()
    with pytest.raises(ServiceResponseError):
        transport.send(HttpRequest("POST", f"http://127.0.0.1:{port}/", content=b"x"),
                       read_timeout=0.2)
    assert time.monotonic() - started < 1.5
