"""Azure Container Registry through ``azure-containerregistry`` (AAD tokens, the SDK's retries,
digest checks), and the one mapping of Azure SDK errors to scan errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from scanning import USER_AGENT
from scanning.errors import (
    AuthError,
    DeadlineExceeded,
    LayerError,
    ManifestError,
    NotFound,
    RegistryError,
    ScanError,
    TransientRegistryError,
)
from scanning.registry.base import (
    _RETRY_STATUSES,
    FetchedManifest,
    check_json_depth,
)
from scanning.registry.http import (
    RegistryLimits,
    _Deadline,
)


class AcrSource:
    """Azure Container Registry through the SDK (AAD tokens, retries, digest checks)."""

    def __init__(self, registry: str, repository: str, *, credential: Any,
                 endpoint: str | None = None, limits: RegistryLimits | None = None) -> None:
        from azure.containerregistry import ContainerRegistryClient

        self.registry = registry
        self.repository = repository
        endpoint = endpoint or f"https://{registry}"
        self._client = ContainerRegistryClient(endpoint, credential, user_agent=USER_AGENT)
        # The SDK refuses http unless told per call (azure.containerregistry._helpers).
        self._call_options: dict[str, Any] = (
            {} if endpoint.startswith("https://") else {"enforce_https": False}
        )
        self._limits = limits or RegistryLimits.from_settings()

    def _options(self, seconds: float) -> dict[str, Any]:
        """Per-call pipeline options: azure-core's RetryPolicy takes ``timeout`` as the total
        for every attempt of one request and ``retry_total`` as the retries after the first
        (it backs off exponentially and honours Retry-After itself); the transport takes the
        socket timeouts. A body the SDK reads in one go is bounded by the read timeout per
        socket read only: ACR is Azure's service, not a registry anyone can point us at."""
        limits = self._limits
        return {**self._call_options, "timeout": seconds, "retry_total": limits.attempts - 1,
                "connection_timeout": min(limits.connect_timeout, seconds),
                "read_timeout": min(limits.read_timeout, seconds)}

    def _translate(self, error: Exception, what: str) -> ScanError:
        return azure_error(self.registry, what, error,
                           refused=f"{self.registry} refused access to {self.repository}",
                           missing=f"{self.registry}/{self.repository}: {what} not found")

    def fetch_manifest(self, ref: str) -> FetchedManifest:
        from azure.core.exceptions import AzureError

        deadline = _Deadline(self._limits.manifest_deadline, f"manifest {ref}")
        try:
            result = self._client.get_manifest(self.repository, ref or "latest",
                                               **self._options(deadline.seconds))
        except (AzureError, ValueError) as error:
            if deadline.remaining() <= 0:
                raise deadline.exceeded(self.registry, str(error)) from error
            raise self._translate(error, f"manifest {ref}") from error
        if not isinstance(result.manifest, Mapping) or not result.digest:
            raise ManifestError(f"{self.registry}: manifest {ref} is not a JSON object")
        document = dict(result.manifest)
        check_json_depth(document, f"manifest {ref}")
        media_type = (result.media_type or "").split(";")[0].strip()
        return FetchedManifest(media_type=media_type, digest=result.digest, document=document,
                               size=len(json.dumps(document)))

    def fetch_blob(self, digest: str, max_size: int) -> bytes:
        pieces: list[bytes] = []
        total = 0
        for chunk in self.blob_chunks(digest):
            total += len(chunk)
            if total > max_size:
                raise ManifestError(f"blob {digest} is over the {max_size}-byte cap")
            pieces.append(chunk)
        return b"".join(pieces)

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob in the SDK's pieces (4 MiB ranged requests, each retried by the pipeline).
        The SDK does not say the size before the end, so the deadline grows with what has
        arrived: the floor plus the bytes received at the minimum rate, checked between
        pieces; passing it makes the layer unreadable (``LayerError``), as over HTTP."""
        from azure.core.exceptions import AzureError

        limits = self._limits
        deadline = _Deadline(limits.blob_deadline(0), f"blob {digest}")
        received = 0
        try:
            with self._client.download_blob(
                    self.repository, digest,
                    **self._options(limits.manifest_deadline)) as stream:
                for piece in stream:
                    received += len(piece)
                    deadline.extend(limits.blob_deadline(received))
                    if deadline.remaining() <= 0:
                        raise deadline.exceeded(self.registry, f"{received} bytes received")
                    yield piece
        except DeadlineExceeded as error:
            raise LayerError(f"layer {digest} cannot be read: {error}") from error
        except (AzureError, ValueError) as error:
            raise self._translate(error, f"blob {digest}") from error

    def close(self) -> None:
        self._client.close()


def azure_error(registry: str, what: str, error: Exception, *, refused: str,
                missing: str = "") -> ScanError:
    """The scan error an Azure SDK error of ``what`` at ``registry`` means: transient ones
    retryable, refusals ``AuthError``, answers of the wrong shape ``ManifestError``. The one
    mapping for every ACR call (images here, the catalog in ``scanning.registry.catalog``)."""
    from azure.containerregistry import DigestValidationError
    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, DigestValidationError):
        return ManifestError(f"{registry}: {what} fails its digest check")
    if isinstance(error, ResourceNotFoundError):
        return NotFound(missing or f"{registry}: {what}: not found")
    if isinstance(error, ClientAuthenticationError):
        return AuthError(refused)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientRegistryError(f"{registry}: {what}: {error}")
    if isinstance(error, DecodeError):  # not JSON at all
        return RegistryError(f"{registry}: {what}: malformed answer: {error}")
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        if status in _RETRY_STATUSES:
            return TransientRegistryError(f"{registry}: {what}: HTTP {status}")
        if status in (401, 403):
            return AuthError(f"{refused} ({status})")
        return RegistryError(f"{registry}: {what}: HTTP {status}")
    if isinstance(error, ValueError):  # the SDK's 4 MiB manifest cap, header and shape checks
        return ManifestError(f"{registry}: {what}: malformed answer: {error}")
    return RegistryError(f"{registry}: {what}: {error}")
