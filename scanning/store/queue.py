"""The notification queue (Azure Storage Queues, Azurite locally).

``send`` is on the weekly rescan's hot path (one message per image that gains findings), so it
posts Put Message (https://learn.microsoft.com/rest/api/storageservices/put-message) through a
pipeline of its own: a retry policy with a deadline, the ``x-ms-date`` header and the account's
auth policy, over ``scanning.store.transport.HTTPClientTransport`` (``RequestsTransport`` when a
proxy is configured). ``QueueClient.send_message`` runs some fifteen policies, builds and parses
the XML through the SDK's models and makes a uuid1 for every call: ~1.8 ms of CPU a message,
against ~1.1 ms for this pipeline over ``RequestsTransport`` and ~0.4 ms over http.client
(``bench/bench_queue_send.py``).
The message on the wire is the SDK's: the same XML, ``x-ms-version`` and no visibility timeout
or time to live (the service's defaults, 0 s and 7 days); the request has no
``x-ms-client-request-id`` (the service's ``x-ms-request-id`` names it in its logs).
``create`` and ``receive`` stay on the SDK.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.core.pipeline import Pipeline, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
)
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest

from scanning import USER_AGENT
from scanning.errors import TransientStoreError
from scanning.store.clients import StorageClients, transport_options
from scanning.store.transport import HTTPClientTransport

# A private module: the Storage SDKs export no shared-key signing policy, and signing requests
# ourselves would copy its canonicalisation rules. If a release moves it, ``send`` falls back to
# ``QueueClient.send_message``.
_shared_key_policy: type | None
try:
    from azure.storage.queue._shared.authentication import SharedKeyCredentialPolicy
    _shared_key_policy = SharedKeyCredentialPolicy
except ImportError:
    _shared_key_policy = None

log = logging.getLogger(__name__)

# The OAuth scope of Azure Storage's data plane
# (https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory).
STORAGE_SCOPE = "https://storage.azure.com/.default"

# Put Message's body, as the SDK serialises it. The text is base64, whose alphabet (A-Z, a-z,
# 0-9, +, /, =) needs no XML escaping.
_MESSAGE_START = b"<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>"
_MESSAGE_END = b"</MessageText></QueueMessage>"

# azure-core retries a POST only on 500, 503 and 504 answers; the Storage SDK retries Put
# Message on timeouts, resets and every transient status, and so does this pipeline (a message
# whose answer was lost may then be queued twice: queue consumers see at-least-once delivery
# either way).
_RETRIED_METHODS = frozenset({"POST"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SendLimits:
    """How long one send may take and how often a transient failure is retried.

    ``deadline`` covers every attempt and the waits between them (a ``Retry-After`` longer than
    what is left is cut short); an attempt started before it ends within one read timeout.
    azure-core retries the first failure at once and waits ``backoff * 2**(n-1)`` after the
    n-th, up to ``max_backoff``.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0
    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0


class _DeadlineRetry(RetryPolicy):
    """azure-core's retry policy, retrying a POST and never sleeping past the deadline."""

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["methods"] = _RETRIED_METHODS
        settings["deadline"] = time.monotonic() + settings["timeout"]
        return settings

    def sleep(self, settings: dict[str, Any], transport: HttpTransport[Any, Any],
              response: PipelineResponse[Any, Any] | None = None) -> None:
        wait = (self.get_retry_after(response) if response else None) or \
            self.get_backoff_time(settings)
        transport.sleep(max(0.0, min(wait, settings["deadline"] - time.monotonic())))


class _StorageDate(SansIOHTTPPolicy[Any, Any]):
    """``x-ms-date`` on every attempt: Shared Key signs it and the service refuses a request
    more than 15 minutes old
    (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key)."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.http_request.headers["x-ms-date"] = formatdate(usegmt=True)


def _auth_policy(credential: Any) -> Any:
    """The pipeline's auth policy for the queue client's credential: a bearer token for a
    token credential (identity mode), the SDK's own shared-key policy for a connection string
    (stateless, so shared); None for anything else (a SAS), which stays on the SDK."""
    if hasattr(credential, "get_token"):
        return BearerTokenCredentialPolicy(credential, STORAGE_SCOPE)
    if _shared_key_policy is not None and isinstance(credential, _shared_key_policy):
        return credential
    return None


class NotificationQueue:
    """Messages for whoever acts on findings; one queue per deployment. Safe to share between
    threads: the send pipeline is built once, and its policies keep per-call state in the call."""

    def __init__(self, clients: StorageClients, name: str, *,
                 limits: SendLimits | None = None, use_requests: bool = False) -> None:
        """``use_requests``: send over ``RequestsTransport`` even without a proxy (for
        ``bench/bench_queue_send.py``'s comparison)."""
        self.name = name
        self.limits = limits or SendLimits()
        self.use_requests = use_requests
        self._client = clients.queue_service().get_queue_client(name)
        self._messages_url = f"{self._client.url}/messages"
        self._headers = {"x-ms-version": self._client.api_version, "User-Agent": USER_AGENT,
                         "Content-Type": "application/xml", "Accept": "application/xml"}
        self._lock = threading.Lock()
        self._built = False
        self._pipeline: Pipeline[HttpRequest, Any] | None = None

    def create(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def send(self, body: str) -> None:
        # Functions' queue trigger expects base64 by default; keep messages consumable by it.
        text = base64.b64encode(body.encode())
        pipeline = self._send_pipeline()
        try:
            if pipeline is None:
                self._client.send_message(text.decode())
                return
            request = HttpRequest("POST", self._messages_url, headers=self._headers,
                                  content=_MESSAGE_START + text + _MESSAGE_END)
            response = pipeline.run(request).http_response
        except AzureError as error:
            raise TransientStoreError(f"cannot queue a notification on {self.name}: {error}"
                                      ) from error
        if response.status_code != 201:
            code = response.headers.get("x-ms-error-code") or response.reason
            raise TransientStoreError(f"cannot queue a notification on {self.name}: "
                                      f"HTTP {response.status_code} {code}")

    def receive(self, limit: int = 32) -> list[str]:
        """Up to ``limit`` messages' decoded bodies (tests and the local demo read them)."""
        with contextlib.suppress(AzureError):
            return [base64.b64decode(message.content).decode()
                    for message in self._client.receive_messages(max_messages=limit)]
        return []

    def _send_pipeline(self) -> Pipeline[HttpRequest, Any] | None:
        """The send pipeline, built on first use; None when the credential is not one it
        signs for (then ``send`` uses the SDK)."""
        if not self._built:
            with self._lock:
                if not self._built:
                    self._pipeline = self._build_pipeline()
                    self._built = True
        return self._pipeline

    def _build_pipeline(self) -> Pipeline[HttpRequest, Any] | None:
        auth = _auth_policy(self._client.credential)
        if auth is None:
            log.info("queue %s: sending through the SDK (credential %s)", self.name,
                     type(self._client.credential).__name__)
            return None
        limits = self.limits
        options = transport_options()
        transport: HttpTransport[Any, Any]
        if options and not self.use_requests:
            # No proxy configured: http.client, ~0.7 ms of CPU less a message.
            transport = HTTPClientTransport(
                connection_timeout=limits.connect_timeout, read_timeout=limits.read_timeout,
                connection_verify=options.get("connection_verify", True))
        else:
            transport = RequestsTransport(connection_timeout=limits.connect_timeout,
                                          read_timeout=limits.read_timeout, **options)
            # Opened here, under the lock: a transport opens its session on first use
            # otherwise, and two threads sending at once would each open one.
            transport.open()
        retries = limits.attempts - 1
        retry = _DeadlineRetry(retry_total=retries, retry_connect=retries, retry_read=retries,
                               retry_status=retries, timeout=limits.deadline,
                               retry_backoff_factor=limits.backoff,
                               retry_backoff_max=limits.max_backoff)
        return Pipeline(transport, policies=[retry, _StorageDate(), auth])
