"""One small exception tree rooted in ScanError.

``retryable`` drives activity retries and HTTP status codes: a retryable error is transient
(429, 5xx, timeouts); anything else is permanent and ends the scan with status ``failed``.
Expected outcomes (no packages, unsupported OS, not an image) are results, not exceptions.
"""

from __future__ import annotations


class ScanError(Exception):
    """Base of every error acr-scan raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(ScanError):
    """A setting is missing or malformed."""


class BadRequest(ScanError):
    """The caller sent something we cannot act on (HTTP 400)."""


class NotFound(ScanError):
    """The thing asked for does not exist (HTTP 404)."""


class RegistryError(ScanError):
    """The registry refused or failed a request."""


class TransientRegistryError(RegistryError):
    """A registry failure that is worth retrying (429, 5xx, timeouts, resets)."""

    retryable = True


class DeadlineExceeded(RegistryError):
    """A registry operation ran past its total deadline (a registry sending its answer too
    slowly). Not retryable: the deadline already covers the operation's own retries, and
    retrying it again would multiply a hostile or broken registry's hold on a worker."""


class AuthError(RegistryError):
    """The registry rejected our credentials."""


class ManifestError(ScanError):
    """A manifest, index or config is malformed, too large or fails its digest check."""


class LayerError(ScanError):
    """A layer could not be read: truncated, bad compression, digest mismatch, over a cap."""


class AnalyzerError(ScanError):
    """An analyzer could not parse a file it asked for."""


class AdvisoryError(ScanError):
    """An advisory feed or index could not be read or built."""


class StoreError(ScanError):
    """Table or Blob Storage failed."""


class TransientStoreError(StoreError):
    retryable = True


class InventoryError(ScanError):
    """A stored inventory or layer result cannot be read (wrong schema, malformed JSON)."""


class Conflict(ScanError):
    """The request names more than one thing (HTTP 409); ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.candidates = candidates


class OrchestrationError(ScanError):
    """An orchestrator misbehaved (yielded something that is not a task, unknown function)."""


class ServiceError(ScanError):
    """A local server could not be started or did not become ready."""


class DemoError(ScanError):
    """The demo's image was not assessed, or the API answered something unexpected."""


class VersionError(ScanError):
    """A version string cannot be parsed under the requested scheme."""


class ConstraintError(VersionError):
    """A constraint string cannot be parsed."""
