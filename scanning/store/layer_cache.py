"""The layer cache in Azure Blob Storage: one blob per layer result (``scanning.layercache``
says the key and the codec)."""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from scanning.errors import StoreError, TransientStoreError
from scanning.layer_types import LayerResult
from scanning.layercache import DEFAULT_CONTAINER, cache_key, decode, encode
from scanning.store.clients import StorageClients


class BlobLayerCache:
    """An Azure Blob container (``layercache``), one blob per layer result."""

    def __init__(self, container_client: Any) -> None:
        self._container = container_client

    @classmethod
    def open(cls, clients: StorageClients, container: str = DEFAULT_CONTAINER) -> BlobLayerCache:
        """The cache in ``container``, which exists."""
        return cls(clients.blob_service().get_container_client(container))

    @classmethod
    def create(cls, clients: StorageClients, container: str = DEFAULT_CONTAINER
               ) -> BlobLayerCache:
        """The cache in ``container``, created when missing."""
        client = clients.blob_service().get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        return cls(client)

    @classmethod
    def from_connection_string(cls, connection_string: str,
                               container: str = DEFAULT_CONTAINER) -> BlobLayerCache:
        return cls.create(StorageClients.from_connection_string(connection_string), container)

    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None:
        key = cache_key(layer_digest, analyzer_version)
        try:
            data = self._container.download_blob(key).readall()
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise TransientStoreError(f"layer cache read {key}: {error}") from error
        return decode(data, layer_digest, analyzer_version)

    def put(self, result: LayerResult) -> None:
        key = cache_key(result.digest, result.analyzer_set_version)
        try:
            self._container.upload_blob(key, encode(result), overwrite=True)
        except HttpResponseError as error:
            retryable = (error.status_code or 0) >= 500 or error.status_code == 429
            raise StoreError(f"layer cache write {key}: {error}", retryable=retryable) from error
        except AzureError as error:
            raise TransientStoreError(f"layer cache write {key}: {error}") from error
