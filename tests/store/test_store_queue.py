"""The notification queue's own send pipeline: against Azurite for what lands on the queue, and
against a scripted local HTTP server for retries and the deadline."""

from __future__ import annotations

import base64
import datetime
import http.server
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

import scanning.store.queue as queue_module
from scanning.errors import TransientStoreError
from scanning.local.services import Azurite, free_port
from scanning.store import StorageClients, StorageSettings
from scanning.store.queue import NotificationQueue, SendLimits

# Fast limits for the scripted server: no backoff, a short deadline.
FAST = SendLimits(connect_timeout=1.0, read_timeout=0.3, deadline=1.0, attempts=4, backoff=0.0)


def _queue(azurite: Azurite, *, connection_string: str = "") -> NotificationQueue:
    clients = StorageClients.from_connection_string(connection_string
                                                    or azurite.connection_string)
    queue = NotificationQueue(clients, "q" + uuid.uuid4().hex[:12])
    queue.create()
    return queue


@pytest.mark.integration
def test_sent_message_is_received_by_the_sdk_with_its_exact_body(azurite: Azurite) -> None:
    queue = _queue(azurite)
    queue.send('{"digest": "sha256:bb", "status": "unhealthy"}')
    assert queue.receive() == ['{"digest": "sha256:bb", "status": "unhealthy"}']


@pytest.mark.integration
def test_xml_special_and_non_ascii_text_round_trips(azurite: Azurite) -> None:
    body = '{"note": "<a href=\\"x\\">&amp; é 漢字 🐳</a>", "tags": ["1.0 & <2"]}'
    queue = _queue(azurite)
    queue.send(body)
    assert queue.receive() == [body]


@pytest.mark.integration
def test_message_is_base64_visible_at_once_and_kept_seven_days(azurite: Azurite) -> None:
    # What the SDK's send_message with no arguments stores: the Functions trigger's base64,
    # the service's default visibility timeout (0) and time to live (7 days).
    queue = _queue(azurite)
    queue.send('{"x": 1}')
    client = StorageClients.from_connection_string(azurite.connection_string) \
        .queue_service().get_queue_client(queue.name)
    [message] = client.peek_messages()
    assert (message.content, message.expires_on - message.inserted_on) == (
        base64.b64encode(b'{"x": 1}').decode(), datetime.timedelta(days=7))


@pytest.mark.integration
def test_concurrent_sends_from_threads_all_arrive_once(azurite: Azurite) -> None:
    queue = _queue(azurite)
    bodies = [f'{{"n": {number}}}' for number in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(queue.send, bodies))
    received: list[str] = []
    while batch := queue.receive():
        received += batch
    assert sorted(received) == sorted(bodies)


@pytest.mark.integration
def test_sending_to_a_missing_queue_is_a_transient_store_error(azurite: Azurite) -> None:
    queue = NotificationQueue(StorageClients.from_connection_string(azurite.connection_string),
                              "missing-queue")
    with pytest.raises(TransientStoreError) as raised:
        queue.send("{}")
    assert (type(raised.value), str(raised.value), raised.value.retryable) == (
        TransientStoreError, "cannot queue a notification on missing-queue: HTTP 404 QueueNotFound",
        True)


@pytest.mark.integration
def test_a_wrong_account_key_is_refused(azurite: Azurite) -> None:
    # Azurite checks Shared Key signatures: this is what tells the signing is right elsewhere.
    good = _queue(azurite)
    wrong_key = base64.b64encode(b"k" * 64).decode()
    clients = StorageClients.from_connection_string(
        re.sub(r"AccountKey=[^;]+", f"AccountKey={wrong_key}", azurite.connection_string))
    with pytest.raises(TransientStoreError) as raised:
        NotificationQueue(clients, good.name).send("{}")
    assert str(raised.value) == (
        f"cannot queue a notification on {good.name}: HTTP 403 AuthenticationFailed")


@pytest.mark.integration
def test_a_sas_connection_string_sends_through_the_sdk(azurite: Azurite) -> None:
    account_key = re.search(r"AccountKey=([^;]+)", azurite.connection_string)
    endpoint = re.search(r"QueueEndpoint=([^;]+)", azurite.connection_string)
    assert account_key and endpoint
    sas = generate_account_sas(
        "devstoreaccount1", account_key.group(1), ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, add=True, create=True, process=True),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    queue = _queue(azurite, connection_string=(
        f"QueueEndpoint={endpoint.group(1)};SharedAccessSignature={sas}"))
    queue.send('{"via": "sdk"}')
    assert queue.receive() == ['{"via": "sdk"}']


@pytest.mark.integration
def test_without_the_sdk_shared_key_policy_send_falls_back_to_the_sdk(
        azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "_shared_key_policy", None)
    queue = _queue(azurite)
    queue.send('{"via": "sdk"}')
    assert queue.receive() == ['{"via": "sdk"}']


@dataclass
class RecordingCredential:
    """A token credential that records the scopes it is asked for."""

    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("token", int(time.time()) + 3600)


def test_identity_mode_asks_for_a_storage_token() -> None:
    credential = RecordingCredential()
    # Nothing listens there: the token is asked for before the connection is refused.
    clients = StorageClients(settings=StorageSettings(
        queue_service_uri=f"https://127.0.0.1:{free_port()}"), _credential=credential)
    queue = NotificationQueue(clients, "notify", limits=FAST)
    with pytest.raises(TransientStoreError) as raised:
        queue.send("{}")
    message = str(raised.value)
    assert (message.startswith("cannot queue a notification on notify: "),
            "Connection refused" in message, credential.scopes) == (
        True, True, [("https://storage.azure.com/.default",)])


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers) of ``answers``, the last one repeated;
    status 0 reads the request and never answers."""

    answers: list[tuple[int, dict[str, str]]] = []
    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        status, headers = cls.answers[min(cls.posts, len(cls.answers) - 1)]
        cls.posts += 1
        if status == 0:
            time.sleep(5)
            return
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[str]:
    """The connection string of an account whose queue endpoint is the scripted server."""
    _Scripted.answers = []
    _Scripted.posts = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ("DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;"
           f"QueueEndpoint=http://127.0.0.1:{server.server_address[1]}/acct")
    server.shutdown()
    server.server_close()


def _scripted_queue(connection_string: str, limits: SendLimits = FAST) -> NotificationQueue:
    return NotificationQueue(StorageClients.from_connection_string(connection_string), "notify",
                             limits=limits)


BUSY = (503, {"x-ms-error-code": "ServerBusy"})


def test_a_transient_answer_is_retried_until_the_message_is_queued(scripted: str) -> None:
    _Scripted.answers = [BUSY, (502, {}), (408, {}), (201, {})]
    _scripted_queue(scripted).send("{}")
    assert _Scripted.posts == 4


def test_retries_stop_after_the_attempts_allowed(scripted: str) -> None:
    _Scripted.answers = [BUSY]
    with pytest.raises(TransientStoreError) as raised:
        _scripted_queue(scripted).send("{}")
    assert (str(raised.value), _Scripted.posts) == (
        "cannot queue a notification on notify: HTTP 503 ServerBusy", 4)


def test_a_refusal_is_not_retried(scripted: str) -> None:
    _Scripted.answers = [(403, {"x-ms-error-code": "AuthorizationFailure"}), (201, {})]
    with pytest.raises(TransientStoreError) as raised:
        _scripted_queue(scripted).send("{}")
    assert (str(raised.value), _Scripted.posts) == (
        "cannot queue a notification on notify: HTTP 403 AuthorizationFailure", 1)


def test_a_long_retry_after_is_cut_at_the_deadline(scripted: str) -> None:
    _Scripted.answers = [(503, {"Retry-After": "60"})]
    started = time.monotonic()
    with pytest.raises(TransientStoreError) as raised:
        _scripted_queue(scripted, SendLimits(deadline=1.0, attempts=10)).send("{}")
    elapsed = time.monotonic() - started
    assert str(raised.value) == "cannot queue a notification on notify: Response timeout"
    assert 1.0 <= elapsed < 3.0


def test_a_server_that_never_answers_fails_within_the_deadline(scripted: str) -> None:
    _Scripted.answers = [(0, {})]
    started = time.monotonic()
    with pytest.raises(TransientStoreError) as raised:
        _scripted_queue(scripted, SendLimits(read_timeout=0.3, deadline=1.0, attempts=10,
                                             backoff=2.0)).send("{}")
    elapsed = time.monotonic() - started
    assert str(raised.value) == "cannot queue a notification on notify: Response timeout"
    # The deadline plus at most one read timeout; the second wait alone would be 4 s.
    assert 1.0 <= elapsed < 2.5
