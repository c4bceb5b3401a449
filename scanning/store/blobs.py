"""Blob Storage for what does not fit a table row: image inventories and layer results.

One container per kind, ``<prefix>-<kind>``. Blob names are built from key-encoded parts
(``scanning.store.keys``) so registry and repository names never create odd paths; the
content is opaque bytes (the pipeline owns its format).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from scanning.errors import NotFound
from scanning.store.entities import storage_errors
from scanning.store.keys import encode_key


class BlobKind(StrEnum):
    INVENTORIES = "inventories"
    LAYERS = "layers"
    # child manifest digest -> the index that lists it (an index scan covers its children)
    CHILDREN = "children"
    # advisory index version -> its per-lookup-key fingerprints (scanning.advisories.index),
    # so the weekly rescan knows which keys changed since an image was assessed
    INDEX_KEYS = "indexkeys"
    # findings documents too large for their image row (scanning.store.findings)
    FINDINGS = "findings"
    # markers of periodic jobs: how far a job got (e.g. the pull sync's last read time)
    MARKERS = "markers"


class BlobStore:
    def __init__(self, service: BlobServiceClient, prefix: str) -> None:
        self.service = service
        self.prefix = prefix

    def container_name(self, kind: BlobKind) -> str:
        return f"{self.prefix}-{kind.value}"

    def create_containers(self) -> None:
        for kind in BlobKind:
            name = self.container_name(kind)
            with storage_errors(f"creating container {name}"), contextlib.suppress(
                ResourceExistsError
            ):
                self.service.create_container(name)

    def delete_containers(self) -> None:
        for kind in BlobKind:
            name = self.container_name(kind)
            with storage_errors(f"deleting container {name}"), contextlib.suppress(
                ResourceNotFoundError
            ):
                self.service.delete_container(name)

    def put(self, kind: BlobKind, name: str, data: bytes,
            content_type: str = "application/octet-stream") -> None:
        blob = self.service.get_blob_client(self.container_name(kind), name)
        with storage_errors(f"writing blob {name}"):
            blob.upload_blob(data, overwrite=True,
                             content_settings=ContentSettings(content_type=content_type))

    def get(self, kind: BlobKind, name: str) -> bytes:
        blob = self.service.get_blob_client(self.container_name(kind), name)
        with storage_errors(f"reading blob {name}"):
            return blob.download_blob().readall()

    def get_if_changed(self, kind: BlobKind, name: str, etag: str) -> tuple[bytes, str] | None:
        """The blob and its ETag; None, with nothing downloaded, while its ETag is ``etag``
        (a reader that keeps what it parsed asks this on each use)."""
        blob = self.service.get_blob_client(self.container_name(kind), name)
        with storage_errors(f"reading blob {name}"):
            try:
                downloader = (blob.download_blob(etag=etag,
                                                 match_condition=MatchConditions.IfModified)
                              if etag else blob.download_blob())
            except HttpResponseError as error:
                # 304 Not Modified (the SDK raises ResourceModifiedError for it): still as kept.
                if error.status_code == HTTPStatus.NOT_MODIFIED:
                    return None
                raise
            return downloader.readall(), str(downloader.properties.etag)

    def exists(self, kind: BlobKind, name: str) -> bool:
        blob = self.service.get_blob_client(self.container_name(kind), name)
        with storage_errors(f"checking blob {name}"):
            return bool(blob.exists())

    def delete(self, kind: BlobKind, name: str) -> None:
        blob = self.service.get_blob_client(self.container_name(kind), name)
        with storage_errors(f"deleting blob {name}"), contextlib.suppress(ResourceNotFoundError):
            blob.delete_blob()

    def names(self, kind: BlobKind, prefix: str) -> list[str]:
        """Names of the blobs of ``kind`` that start with ``prefix``."""
        container = self.service.get_container_client(self.container_name(kind))
        with storage_errors(f"listing blobs {prefix}"):
            return list(container.list_blob_names(name_starts_with=prefix))

    # ------------------------------------------------------------ inventories

    @staticmethod
    def inventory_name(registry: str, digest: str) -> str:
        return f"{encode_key(registry)}/{encode_key(digest)}.json"

    def put_inventory(self, registry: str, digest: str, data: bytes | Mapping[str, Any]) -> None:
        """Store an image's inventory: bytes as given, a mapping as compact JSON."""
        content = data if isinstance(data, bytes) else json.dumps(
            data, separators=(",", ":")).encode()
        self.put(BlobKind.INVENTORIES, self.inventory_name(registry, digest), content,
                 content_type="application/json")

    def get_inventory(self, registry: str, digest: str) -> bytes:
        """The inventory bytes; NotFound when the image has none (re-analyse it)."""
        try:
            return self.get(BlobKind.INVENTORIES, self.inventory_name(registry, digest))
        except NotFound:
            raise NotFound(f"no inventory stored for {digest} in {registry}") from None

    def inventory_names(self) -> frozenset[str]:
        """Every stored inventory's blob name (``inventory_name``): one listing, 5,000 names a
        request, instead of a request per image."""
        container = self.service.get_container_client(
            self.container_name(BlobKind.INVENTORIES))
        with storage_errors("listing inventories"):
            # Names only: the SDK reads them straight from the XML, ~5x less CPU than
            # list_blobs (which builds a BlobProperties per blob).
            return frozenset(container.list_blob_names())

    def has_inventory(self, registry: str, digest: str) -> bool:
        return self.exists(BlobKind.INVENTORIES, self.inventory_name(registry, digest))
