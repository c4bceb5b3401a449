"""An azure-core transport over ``http.client`` for small requests on hot paths.

azure-core's ``RequestsTransport`` spends most of a small request's client CPU in ``requests``
and ``urllib3`` (session merging, header dictionaries, connection pool bookkeeping): of the
~1.1-1.4 ms a notification's Put Message costs in the queue's own pipeline, ~0.9 ms
(``bench/bench_queue_send.py``). This transport sends the pipeline's request as it is, on a
kept-alive ``http.client`` connection from a small pool per origin, and answers with azure-core's
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
# Idle connections kept per origin.
MAX_IDLE = 8


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
    """Sends each request on an idle pooled connection to its origin, or a new one; a
    connection goes back to the pool once its answer is read whole and the server keeps it
    alive, and at most ``max_idle`` idle connections are kept per origin (the others are
    closed), so threads that come and go do not leave sockets behind. ``connection_timeout``
    bounds the connect (and the TLS handshake), ``read_timeout`` each wait for the server after
    that; ``connection_verify`` is True (the system's CA store), a CA bundle's path, or False
    (no verification)."""

    def __init__(self, *, connection_timeout: float = 5.0, read_timeout: float = 10.0,
                 connection_verify: bool | str = True, max_body: int = MAX_BODY,
                 max_idle: int = MAX_IDLE) -> None:
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.max_idle = max_idle
        self._verify = connection_verify
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        # Idle connections per (scheme, host:port), the most recently used last.
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}

    def __enter__(self) -> HTTPClientTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def open(self) -> None:
        pass

    def close(self) -> None:
        """Close the idle connections. The transport stays usable: a connection in use when
        this is called goes back to the pool, and a later send opens new ones."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def idle_connections(self) -> int:
        with self._lock:
            return sum(len(connections) for connections in self._idle.values())

    def send(self, request: Any, **kwargs: Any) -> SmallResponse:
        url = urlsplit(request.url)
        origin = (url.scheme, url.netloc)
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        # Per-call timeouts, as azure-core's transports take them (the retry policy lowers
        # ``connection_timeout`` to what is left of its deadline).
        connect_timeout = kwargs.get("connection_timeout") or self.connection_timeout
        read_timeout = kwargs.get("read_timeout") or self.read_timeout
        connection = self._acquire(origin)
        try:
            if connection.sock is None:
                connection.timeout = connect_timeout
                connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(read_timeout)
            connection.request(request.method, target, body=request.content,
                               headers=dict(request.headers))
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ServiceRequestError(f"{type(error).__name__}: {error}", error=error) from error
        try:
            answer = connection.getresponse()
            data = answer.read(self.max_body + 1)
            if len(data) > self.max_body:
                raise ServiceResponseError(
                    f"answer of {request.method} {url.path} over {self.max_body} bytes")
            headers = CaseInsensitiveDict(answer.getheaders())
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ServiceResponseError(f"{type(error).__name__}: {error}", error=error) from error
        except ServiceResponseError:
            connection.close()
            raise
        if answer.will_close:
            connection.close()
        else:
            self._release(origin, connection)
        return SmallResponse(request, answer.status, answer.reason, headers, data)

    def _acquire(self, origin: tuple[str, str]) -> http.client.HTTPConnection:
        """An idle connection to ``origin`` the server has not closed, or a new one."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                return self._new_connection(*origin)
            if connection.sock is not None and not _closed_by_peer(connection.sock):
                return connection
            # An idle connection has nothing to read unless the server closed it (or broke
            # the protocol): dropped, rather than an attempt that fails.
            connection.close()

    def _release(self, origin: tuple[str, str], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append(connection)
                return
        connection.close()

    def _new_connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.connection_timeout,
                                               context=self._tls_context())
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self.connection_timeout)
        raise ServiceRequestError(f"unsupported URL scheme {scheme!r}")

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
