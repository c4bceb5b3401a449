"""An azure-core transport over ``http.client`` for small requests on hot paths.

azure-core's ``RequestsTransport`` spends most of a small request's client CPU in ``requests``
and ``urllib3`` (session merging, header dictionaries, connection pool bookkeeping): of the
~1.1-1.4 ms a notification's Put Message costs in the queue's own pipeline, ~0.9 ms
(``bench/bench_queue_send.py``). This transport sends the pipeline's request as it is, on one
persistent ``http.client`` connection per thread and origin, and answers with azure-core's
public (legacy) ``HttpResponse``: the pipeline's retry, date and auth policies are unchanged.

It is meant for requests whose answers are small and read whole (``max_body``); it does not
stream, follow proxies or read the environment. ``scanning.store.queue`` uses it unless a proxy
is configured (then ``RequestsTransport``, which follows it).

Failures map to what azure-core's retry policy retries: ``ServiceRequestError`` when the
request could not be sent (connect refused or timed out, TLS failure, a reused connection the
server had closed), ``ServiceResponseError`` when no complete answer came back (read timeout,
reset, a malformed or oversized answer). A failed connection is dropped; the next attempt opens
a new one. An idle connection the server has closed (its keep-alive timeout) is noticed before
it is reused (the socket is readable), as urllib3 does, and replaced without a failed attempt.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpResponse, HttpTransport
from azure.core.utils import CaseInsensitiveDict

# The largest answer read: Put Message answers ~400 bytes of XML.
MAX_BODY = 1 << 20


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle connection's socket is readable: end of file or unexpected bytes."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class SmallResponse(HttpResponse):
    """An answer read whole: status, reason, headers (case-insensitive) and body."""

    def __init__(self, request: Any, status: int, reason: str,
                 headers: CaseInsensitiveDict, data: bytes) -> None:
        super().__init__(request, None)
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content_type = headers.get("Content-Type")
        self._data = data

    def body(self) -> bytes:
        return self._data

    def stream_download(self, pipeline: Any, **kwargs: Any) -> Any:
        return iter((self._data,))


class HTTPClientTransport(HttpTransport):
    """Sends each request on this thread's connection to its origin (opened on first use and
    kept while the server keeps it alive). ``connection_timeout`` bounds the connect (and the
    TLS handshake), ``read_timeout`` each wait for the server after that; ``connection_verify``
    is True (the system's CA store), a CA bundle's path, or False (no verification)."""

    def __init__(self, *, connection_timeout: float = 5.0, read_timeout: float = 10.0,
                 connection_verify: bool | str = True, max_body: int = MAX_BODY) -> None:
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.max_body = max_body
        self._verify = connection_verify
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every open connection of every thread, for ``close``.
        self._open: set[http.client.HTTPConnection] = set()

    def __enter__(self) -> HTTPClientTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def open(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def send(self, request: Any, **kwargs: Any) -> SmallResponse:
        url = urlsplit(request.url)
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        connection = self._connection(url.scheme, url.netloc)
        if connection.sock is not None and _closed_by_peer(connection.sock):
            # An idle connection has nothing to read unless the server closed it (or broke
            # the protocol): a new one, rather than an attempt that fails.
            self._drop(connection)
            connection = self._connection(url.scheme, url.netloc)
        try:
            if connection.sock is None:
                connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(self.read_timeout)
            connection.request(request.method, target, body=request.content,
                               headers=dict(request.headers))
        except (OSError, http.client.HTTPException) as error:
            self._drop(connection)
            raise ServiceRequestError(f"{type(error).__name__}: {error}", error=error) from error
        try:
            answer = connection.getresponse()
            data = answer.read(self.max_body + 1)
            if len(data) > self.max_body:
                raise ServiceResponseError(
                    f"answer of {request.method} {url.path} over {self.max_body} bytes")
            headers = CaseInsensitiveDict(answer.getheaders())
            if answer.will_close:
                self._drop(connection)
        except (OSError, http.client.HTTPException) as error:
            self._drop(connection)
            raise ServiceResponseError(f"{type(error).__name__}: {error}", error=error) from error
        except ServiceResponseError:
            self._drop(connection)
            raise
        return SmallResponse(request, answer.status, answer.reason, headers, data)

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        connections: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        connection = connections.get((scheme, netloc))
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    netloc, timeout=self.connection_timeout, context=self._tls_context())
            elif scheme == "http":
                connection = http.client.HTTPConnection(netloc, timeout=self.connection_timeout)
            else:
                raise ServiceRequestError(f"unsupported URL scheme {scheme!r}")
            connections[scheme, netloc] = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        connections = getattr(self._local, "connections", {})
        for key, value in list(connections.items()):
            if value is connection:
                del connections[key]
        with self._lock:
            self._open.discard(connection)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            if self._verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(self._verify, str):
                context = ssl.create_default_context(cafile=self._verify)
            else:
                context = ssl.create_default_context()
            self._tls = context
        return self._tls
