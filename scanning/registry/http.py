"""Any registry over the Distribution HTTP API: anonymous, basic and bearer-token auth, total
deadlines and bounded retries with backoff (``RegistryLimits``), blobs resumed with ``Range``."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from scanning import USER_AGENT
from scanning.config import float_setting, int_setting
from scanning.errors import (
    AuthError,
    ConfigError,
    DeadlineExceeded,
    LayerError,
    ManifestError,
    NotFound,
    RegistryError,
    TransientRegistryError,
)
from scanning.registry.base import (
    _DIGEST_RE,
    _RETRY_STATUSES,
    _TRANSIENT_REQUEST_ERRORS,
    ACCEPT,
    CHUNK_SIZE,
    MAX_MANIFEST_BYTES,
    FetchedManifest,
    MiB,
    _manifest_from_bytes,
    sha256_digest,
    verify_digest,
)
from scanning.registry.reference import (
    api_host,
    is_insecure_host,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicCredentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print the password
        return f"BasicCredentials(username={self.username!r})"


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): value for key, value in
              re.findall(r'([A-Za-z_]+)="([^"]*)"', rest)}
    return scheme.lower(), params


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryLimits:
    """How long a registry operation may take, and how often a transient failure is retried.

    A deadline covers one whole operation: every attempt, the waits between them and reading
    the body. The socket timeouts alone do not bound anything: a registry that sends one byte
    every 20 s never trips a 120 s read timeout, but it trips the deadline. Manifests, indexes
    and configs get ``manifest_deadline``; a blob gets ``blob_deadline_floor`` plus its size
    at ``blob_min_bytes_per_second`` (the size from ``Content-Length``; the floor alone when
    the registry does not say).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # one socket read
    manifest_deadline: float = 60.0
    blob_deadline_floor: float = 60.0
    blob_min_bytes_per_second: float = float(MiB)
    attempts: int = 4
    backoff: float = 0.5  # the first wait; doubled for each later one
    max_backoff: float = 30.0

    @classmethod
    def from_settings(cls) -> RegistryLimits:
        limits = cls(manifest_deadline=float_setting("REGISTRY_MANIFEST_DEADLINE_SECONDS"),
                     blob_deadline_floor=float_setting("REGISTRY_BLOB_DEADLINE_SECONDS"),
                     blob_min_bytes_per_second=float_setting(
                         "REGISTRY_BLOB_MIN_BYTES_PER_SECOND"),
                     attempts=int_setting("REGISTRY_ATTEMPTS"))
        numbers = (limits.manifest_deadline, limits.blob_deadline_floor,
                   limits.blob_min_bytes_per_second)
        if not (all(0 < number < math.inf for number in numbers)
                and 1 <= limits.attempts <= 20):
            raise ConfigError("REGISTRY_*_DEADLINE_SECONDS and REGISTRY_BLOB_MIN_BYTES_PER_SECOND "
                              "must be positive and finite, REGISTRY_ATTEMPTS from 1 to 20")
        return limits

    def blob_deadline(self, size: int) -> float:
        return self.blob_deadline_floor + size / self.blob_min_bytes_per_second

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after failed attempt ``attempt`` (1-based): exponential backoff with equal
        jitter (half fixed, half random, so that many scans hit by one outage do not come
        back in step), or the registry's ``Retry-After`` when that is longer."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return max(ceiling / 2 + rng.uniform(0, ceiling / 2), retry_after or 0.0)


class _Deadline:
    """The moment one registry operation must be over (monotonic clock)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.what = what
        self.seconds = seconds
        self._started = time.monotonic()

    def extend(self, seconds: float) -> None:
        """Allow ``seconds`` from the start, once the operation's size is known."""
        self.seconds = max(self.seconds, seconds)

    def remaining(self) -> float:
        return self._started + self.seconds - time.monotonic()

    def exceeded(self, registry: str, detail: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"{registry}: {self.what} not received within its "
                                f"{self.seconds:.0f} s deadline ({detail})")


class _Watchdog:
    """Shuts the response's socket down when the deadline passes, so that a read blocked on a
    registry that drips its body returns at once (urllib3's ``HTTPResponse.shutdown`` exists
    for exactly this: unblocking a read from another thread)."""

    def __init__(self, response: requests.Response, deadline: _Deadline) -> None:
        self.fired = threading.Event()
        self._response = response
        self._timer = threading.Timer(max(0.0, deadline.remaining()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired.set()
        # Already released or closed: then no read is blocked on it.
        with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
            self._response.raw.shutdown()

    def cancel(self) -> None:
        self._timer.cancel()


class _RetryLater(TransientRegistryError):
    """A transient HTTP answer, with the wait the registry asked for (``Retry-After``)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str, now: datetime) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None when
    absent or malformed (only ASCII digits are digits here)."""
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


_CONTENT_RANGE_RE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)")


class HttpRegistrySource:
    """A Distribution-API registry over ``requests``: see the module docstring for why."""

    def __init__(self, registry: str, repository: str, *,
                 credentials: BasicCredentials | None = None,
                 session: requests.Session | None = None, limits: RegistryLimits | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.registry = registry
        self.repository = repository
        scheme = "http" if is_insecure_host(registry) else "https"
        self.base_url = f"{scheme}://{api_host(registry)}/v2/{repository}"
        self._credentials = credentials
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._authorization: str | None = None
        self._limits = limits or RegistryLimits.from_settings()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _authenticate(self, challenge: str) -> None:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if self._credentials is None:
                raise AuthError(f"{self.registry} requires credentials (basic auth)")
            token = base64.b64encode(
                f"{self._credentials.username}:{self._credentials.password}".encode()
            ).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme != "bearer" or "realm" not in params:
            raise AuthError(f"{self.registry}: unsupported authentication challenge {scheme!r}")
        query = {"scope": params.get("scope", f"repository:{self.repository}:pull")}
        if "service" in params:
            query["service"] = params["service"]
        auth = ((self._credentials.username, self._credentials.password)
                if self._credentials else None)
        response = self._send_once("GET", params["realm"], params=query, auth=auth,
                                   authorize=False)
        if response.status_code in (401, 403):
            raise AuthError(f"{self.registry} token service refused us ({response.status_code})")
        if response.status_code != 200:
            raise RegistryError(f"{self.registry} token service answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except ValueError as error:
            raise AuthError(f"{self.registry} token service sent no JSON") from error
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.registry} token service sent no token")
        self._authorization = f"Bearer {token}"

    def _send_once(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None, auth: Any = None,
                   authorize: bool = True, stream: bool = False) -> requests.Response:
        """One request (headers only: the caller reads the body), retried on transient
        failures within the manifest deadline."""
        deadline = _Deadline(self._limits.manifest_deadline, f"{method} {urlsplit(url).path}")
        return self._retrying(lambda: self._attempt(
            method, url, deadline, headers=headers, params=params, auth=auth,
            authorize=authorize, stream=stream), deadline)

    def _retrying(self, operation: Callable[[], _T], deadline: _Deadline) -> _T:
        """``operation`` until it works, fails for good, or runs out of attempts or time."""
        attempt = 1
        while True:
            try:
                return operation()
            except TransientRegistryError as error:
                self._pause(attempt, error, deadline)
                attempt += 1

    def _pause(self, attempt: int, error: TransientRegistryError, deadline: _Deadline) -> None:
        """Wait before attempt ``attempt + 1``, or raise when there is none to make.

        Both ways out stay retryable: the registry said the failure was temporary, so the
        caller's retry policy (the orchestration's) may try again later.
        """
        limits = self._limits
        if attempt >= limits.attempts:
            raise TransientRegistryError(f"{self.registry}: {deadline.what}: {attempt} "
                                         f"attempts failed (last: {error})") from error
        retry_after = error.retry_after if isinstance(error, _RetryLater) else None
        delay = limits.delay(attempt, retry_after, self._rng)
        if delay >= deadline.remaining():
            raise TransientRegistryError(
                f"{self.registry}: {deadline.what}: attempt {attempt} failed, and waiting "
                f"{delay:.1f} s more would pass the {deadline.seconds:.0f} s deadline "
                f"(last: {error})") from error
        log.info("registry %s: %s: %s; attempt %d of %d in %.2f s", self.registry,
                 deadline.what, error, attempt + 1, limits.attempts, delay)
        self._sleep(delay)

    def _attempt(self, method: str, url: str, deadline: _Deadline, *,
                 headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None, auth: Any = None,
                 authorize: bool = True, stream: bool = False) -> requests.Response:
        """One request; transient failures raise ``TransientRegistryError``. The socket
        timeouts are cut to the time the deadline leaves, so a timeout then means the
        deadline has passed."""
        what = f"{method} {urlsplit(url).path}"
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.exceeded(self.registry, f"no time left for {what}")
        connect = min(self._limits.connect_timeout, remaining)
        read = min(self._limits.read_timeout, remaining)
        request_headers = dict(headers or {})
        if authorize and self._authorization:
            request_headers["Authorization"] = self._authorization
        try:
            response = self._session.request(method, url, headers=request_headers,
                                             params=params, auth=auth, stream=stream,
                                             timeout=(connect, read))
        except requests.Timeout as error:
            if read < self._limits.read_timeout:
                raise deadline.exceeded(self.registry, f"{what} timed out") from error
            raise TransientRegistryError(f"{what}: {type(error).__name__}") from error
        except _TRANSIENT_REQUEST_ERRORS as error:
            raise TransientRegistryError(f"{what}: {type(error).__name__}: {error}") from error
        except requests.RequestException as error:
            raise RegistryError(f"{self.registry}: {error}") from error
        if response.status_code in _RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After", ""),
                                            datetime.now(UTC))
            response.close()
            raise _RetryLater(f"{what}: HTTP {response.status_code}", retry_after)
        return response

    def _challenged(self, method: str, url: str, deadline: _Deadline, *,
                    headers: Mapping[str, str] | None = None) -> requests.Response:
        """One request, its body not read yet; sent once more after answering a 401's
        authentication challenge."""
        response = self._attempt(method, url, deadline, headers=headers, stream=True)
        if response.status_code == 401:
            response.close()
            self._authenticate(response.headers.get("WWW-Authenticate", ""))
            response = self._attempt(method, url, deadline, headers=headers, stream=True)
        return response

    def _get(self, path: str, deadline: _Deadline, *,
             headers: Mapping[str, str] | None = None) -> requests.Response:
        """One GET (answering an auth challenge once), its body not read yet: 200, or 206
        when ``headers`` ask for a range."""
        response = self._challenged("GET", f"{self.base_url}/{path}", deadline, headers=headers)
        if response.status_code in (401, 403):
            response.close()
            raise AuthError(f"{self.registry} refused access to {self.repository} "
                            f"({response.status_code})")
        if response.status_code == 404:
            response.close()
            raise NotFound(f"{self.registry}/{self.repository}: {path} not found")
        if response.status_code not in (200, 206):
            response.close()
            raise RegistryError(f"{self.registry}: GET {path} answered {response.status_code}")
        return response

    def _read_capped(self, response: requests.Response, max_size: int, what: str,
                     deadline: _Deadline | None = None) -> bytes:
        """The whole body, at most ``max_size`` bytes, before the deadline."""
        deadline = deadline or _Deadline(self._limits.manifest_deadline, what)
        declared = response.headers.get("Content-Length", "")
        if re.fullmatch(r"[0-9]+", declared) and int(declared) > max_size:
            response.close()
            raise ManifestError(f"{what} is {declared} bytes, over the {max_size}-byte cap")
        pieces: list[bytes] = []
        total = 0
        for chunk in self._body(response, deadline, 64 * 1024):
            total += len(chunk)
            if total > max_size:
                response.close()
                raise ManifestError(f"{what} is over the {max_size}-byte cap")
            pieces.append(chunk)
        return b"".join(pieces)

    def _body(self, response: requests.Response, deadline: _Deadline,
              chunk_size: int) -> Iterator[bytes]:
        """The body as it arrives; a read error is transient, unless the deadline cut it."""
        watchdog = _Watchdog(response, deadline)
        received = 0
        try:
            for chunk in response.iter_content(chunk_size):
                received += len(chunk)
                yield chunk
        except _TRANSIENT_REQUEST_ERRORS as error:
            if watchdog.fired.is_set():
                raise deadline.exceeded(self.registry, f"{received} bytes received") from error
            raise TransientRegistryError(f"reading {deadline.what}: {error}") from error
        finally:
            watchdog.cancel()
            response.close()
        # Without a Content-Length, a shut-down socket looks like the end of the body.
        if watchdog.fired.is_set():
            raise deadline.exceeded(self.registry, f"{received} bytes received")

    def _fetch(self, path: str, what: str, max_size: int, *,
               headers: Mapping[str, str] | None = None) -> tuple[requests.Response, bytes]:
        """A small document (manifest, index, config) with its response headers, retried as a
        whole: a reset in the middle of the body is as transient as a 503."""
        deadline = _Deadline(self._limits.manifest_deadline, what)

        def attempt() -> tuple[requests.Response, bytes]:
            response = self._get(path, deadline, headers=headers)
            return response, self._read_capped(response, max_size, what, deadline)

        return self._retrying(attempt, deadline)

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        what = f"manifest {ref}"
        response, data = self._fetch(f"manifests/{ref or 'latest'}", what, MAX_MANIFEST_BYTES,
                                     headers={"Accept": ACCEPT})
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        header_digest = response.headers.get("Docker-Content-Digest", "")
        digest = ref if _DIGEST_RE.fullmatch(ref) else sha256_digest(data)
        manifest = _manifest_from_bytes(data, media_type, digest, what)
        if header_digest.startswith("sha256:") and header_digest != sha256_digest(data):
            raise ManifestError(f"manifest {ref}: registry says {header_digest}, content "
                                f"hashes to {sha256_digest(data)}")
        return manifest

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        _, data = self._fetch(f"blobs/{digest}", f"blob {digest}", max_size)
        verify_digest(data, digest, "blob")
        return data

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob as it streams. A transient failure part way resumes where it stopped
        (``Range``, which Distribution and the OCI distribution-spec support for blobs), or
        from the start, skipping what was already passed on, when the registry ignores it.
        A blob that does not arrive within its deadline is a layer that cannot be read
        (``LayerError``: its platform fails, naming the layer), not a retryable error: the
        deadline already covers this operation's own retries."""
        deadline = _Deadline(self._limits.blob_deadline(0), f"blob {digest}")
        received = 0
        attempt = 1
        while True:
            try:
                headers = {"Range": f"bytes={received}-"} if received else None
                response = self._get(f"blobs/{digest}", deadline, headers=headers)
                skip = self._resume_offset(response, received, digest)
                deadline.extend(self._limits.blob_deadline(_blob_size(response)))
                for chunk in self._body(response, deadline, CHUNK_SIZE):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                        if not chunk:
                            continue
                    received += len(chunk)
                    yield chunk
                return
            except DeadlineExceeded as error:
                raise LayerError(f"layer {digest} cannot be read: {error}") from error
            except TransientRegistryError as error:
                self._pause(attempt, error, deadline)
                attempt += 1

    def _resume_offset(self, response: requests.Response, received: int, digest: str) -> int:
        """How many bytes of ``response`` were passed on already (0 for a matching range)."""
        if response.status_code == 200:
            return received
        found = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
        if found is None or int(found.group(1)) != received:
            response.close()
            raise RegistryError(f"{self.registry}: blob {digest}: asked for bytes from "
                                f"{received}, got {response.headers.get('Content-Range')!r}")
        return 0

    def close(self) -> None:
        self._session.close()


def _blob_size(response: requests.Response) -> int:
    """The whole blob's size: ``Content-Range``'s total on a 206, else ``Content-Length``;
    0 when the registry does not say."""
    found = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
    if found is not None and found.group(3) != "*":
        return int(found.group(3))
    declared = response.headers.get("Content-Length", "")
    return int(declared) if re.fullmatch(r"[0-9]{1,19}", declared) else 0
