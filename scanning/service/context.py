"""What every activity and timer works with: the store, the layer cache, the advisory index and
the notification queue, built once per worker (``services()``)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from scanning.advisories.index import (
    AdvisoryIndex,
    LookupKey,
    encode_key_fingerprints,
    key_fingerprints,
)
from scanning.config import setting
from scanning.layercache import LayerCache
from scanning.store.advisory_index import index_etag, index_version, load_index_from_blob
from scanning.store.blobs import BlobKind
from scanning.store.layer_cache import BlobLayerCache
from scanning.store.queue import NotificationQueue
from scanning.store.store import Store

log = logging.getLogger(__name__)

# How often a worker asks whether a newer index was published.
_INDEX_CHECK_SECONDS = 60.0


class IndexSource:
    """The advisory index from Blob Storage, reloaded when the published blob changes.

    Workers check the blob's ETag at most once a minute, so a newly published index is picked
    up without a restart.
    """

    def __init__(self, store: Store) -> None:
        self._service = store.clients.blob_service()
        self._lock = threading.Lock()
        self._index: AdvisoryIndex | None = None
        self._etag = ""
        self._checked = 0.0
        self._keys: tuple[str, dict[LookupKey, str]] | None = None

    def get(self) -> tuple[AdvisoryIndex, str]:
        """The index and its version (build time + ETag)."""
        with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._checked > _INDEX_CHECK_SECONDS:
                etag = index_etag(self._service)
                if self._index is None or etag != self._etag:
                    self._index = load_index_from_blob(self._service)
                    self._etag = etag
                    log.info("loaded advisory index built %s (etag %s)", self._index.built, etag)
                self._checked = now
            return self._index, index_version(self._index.built, self._etag)

    def key_fingerprints(self, index: AdvisoryIndex,
                         version: str) -> dict[LookupKey, str]:
        """``key_fingerprints(index)`` of the index ``get`` returned, computed once."""
        with self._lock:
            if self._keys is None or self._keys[0] != version:
                self._keys = (version, key_fingerprints(index))
            return self._keys[1]

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0


@dataclass(slots=True, kw_only=True)
class Services:
    store: Store
    layer_cache: LayerCache
    index: IndexSource
    queue: NotificationQueue | None
    # Index versions whose key fingerprints are known to be stored (``record_index_keys``).
    index_keys_recorded: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def create(cls, store: Store) -> Services:
        """Create what is missing (tables, containers, the queue), then ``open``."""
        store.create()
        BlobLayerCache.create(store.clients, cls.layer_cache_container(store))
        services = cls.open(store)
        assert services.queue is not None
        services.queue.create()
        return services

    @classmethod
    def open(cls, store: Store) -> Services:
        """The services of a store whose tables, containers and queue exist."""
        return cls(store=store,
                   layer_cache=BlobLayerCache.open(store.clients,
                                                   cls.layer_cache_container(store)),
                   index=IndexSource(store),
                   queue=NotificationQueue(store.clients, setting("NOTIFY_QUEUE_NAME")))

    @staticmethod
    def layer_cache_container(store: Store) -> str:
        return f"{store.prefix}-layercache"


_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """The worker's services, built once from settings."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services.create(Store.from_settings())
        return _services


def forget_services() -> None:
    """Forget the built services, so the next ``services()`` builds them from the settings as
    they are then (a local host switching settings between runs). Waits for a build in
    progress: a build that read the old settings cannot land after this returns."""
    global _services
    with _services_lock:
        _services = None


def index_keys_name(index_version: str) -> str:
    """Blob name of an index version's key fingerprints (versions hold ``|`` and quotes)."""
    return hashlib.sha256(index_version.encode()).hexdigest()


def record_index_keys(services: Services, index: AdvisoryIndex, index_version: str) -> None:
    """Store the index's per-key fingerprints once per version, before any image records that
    it was assessed with it: a later rescan diffs them against its own index."""
    if index_version in services.index_keys_recorded:
        return
    name = index_keys_name(index_version)
    if not services.store.blobs.exists(BlobKind.INDEX_KEYS, name):
        services.store.blobs.put(BlobKind.INDEX_KEYS, name, encode_key_fingerprints(
            services.index.key_fingerprints(index, index_version)))
    services.index_keys_recorded.add(index_version)
