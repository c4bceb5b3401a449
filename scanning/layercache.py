"""Per-layer analysis results, cached by layer digest + analyzer-set version.

A layer digest names its content, so what the analyzers found in it never changes until the
analyzers do: the key is ``<analyzer_set_version>/<algorithm>/<hex>.json.gz``. A new analyzer
version is a new prefix, so stale results are never read (and can be deleted by prefix).

Two implementations of one small interface: a local directory (the CLI's ``--cache DIR``, the
tests) and an Azure Blob container (``layercache``; the function app, Azurite locally). An
unreadable entry counts as a miss: the layer is read again and the entry rewritten.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from scanning.errors import InventoryError, StoreError, TransientStoreError
from scanning.layer_types import LayerResult

log = logging.getLogger(__name__)

DEFAULT_CONTAINER = "layercache"


class LayerCache(Protocol):
    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None: ...

    def put(self, result: LayerResult) -> None: ...


def cache_key(layer_digest: str, analyzer_version: str) -> str:
    algorithm, _, hex_digest = layer_digest.partition(":")
    if not algorithm.isalnum() or not hex_digest.isalnum() or not analyzer_version.isalnum():
        raise ValueError(f"cannot key a cache entry by {layer_digest!r}/{analyzer_version!r}")
    return f"{analyzer_version}/{algorithm}/{hex_digest}.json.gz"


def encode(result: LayerResult) -> bytes:
    text = json.dumps(result.to_json(), sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), mtime=0)


def decode(data: bytes, layer_digest: str, analyzer_version: str) -> LayerResult | None:
    try:
        result = LayerResult.from_json(json.loads(gzip.decompress(data)))
    except (OSError, EOFError, ValueError, InventoryError) as error:
        log.warning("layer cache entry %s unreadable (%s); reading the layer again",
                    layer_digest, error)
        return None
    if result.digest != layer_digest or result.analyzer_set_version != analyzer_version:
        log.warning("layer cache entry %s holds another layer; ignored", layer_digest)
        return None
    return result


class LocalLayerCache:
    """A directory of gzipped JSON files; writes are atomic (temp file + rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None:
        path = self.directory / cache_key(layer_digest, analyzer_version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return decode(data, layer_digest, analyzer_version)

    def put(self, result: LayerResult) -> None:
        path = self.directory / cache_key(result.digest, result.analyzer_set_version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as temporary:
            temporary.write(encode(result))
        os.replace(temporary.name, path)


class BlobLayerCache:
    """An Azure Blob container (``layercache``), one blob per layer result."""

    def __init__(self, container_client: Any) -> None:
        self._container = container_client

    @classmethod
    def from_connection_string(cls, connection_string: str,
                               container: str = DEFAULT_CONTAINER) -> BlobLayerCache:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection_string)
        client = service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        return cls(client)

    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        key = cache_key(layer_digest, analyzer_version)
        try:
            data = self._container.download_blob(key).readall()
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise TransientStoreError(f"layer cache read {key}: {error}") from error
        return decode(data, layer_digest, analyzer_version)

    def put(self, result: LayerResult) -> None:
        from azure.core.exceptions import AzureError, HttpResponseError

        key = cache_key(result.digest, result.analyzer_set_version)
        try:
            self._container.upload_blob(key, encode(result), overwrite=True)
        except HttpResponseError as error:
            retryable = (error.status_code or 0) >= 500 or error.status_code == 429
            raise StoreError(f"layer cache write {key}: {error}", retryable=retryable) from error
        except AzureError as error:
            raise TransientStoreError(f"layer cache write {key}: {error}") from error
