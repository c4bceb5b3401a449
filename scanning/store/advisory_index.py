"""Publish the compiled index to Blob Storage and load it from there.

The refresh job compiles the index and publishes it; scans and rescans load the latest copy.
The blob is ``<ADVISORY_CONTAINER>/index/current.idx`` (container from the setting of that name).
An upload commits in one step (Put Blob, or Put Block List for large files), so readers see the
old index or the new one, never a mix. Before publishing, the file is parsed: a broken build is
refused here rather than breaking every scan that loads it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from scanning.advisories.index import AdvisoryIndex, parse_index
from scanning.config import setting
from scanning.errors import NotFound, StoreError, TransientStoreError

logger = logging.getLogger(__name__)

INDEX_BLOB_NAME = "index/current.idx"
NO_INDEX_REASON = "no advisory index published yet"


def index_version(built: str, etag: str) -> str:
    """An index's version as image rows record it: its build time and its blob's ETag, which
    changes with every publish (so two publishes of the same content are two versions)."""
    return f"{built}|{etag}"


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish_index`` put in place: the parsed index and its ``index_version``."""

    index: AdvisoryIndex
    version: str


def publish_index(
    service: BlobServiceClient, path: Path, *, container: str | None = None
) -> Published:
    """Upload the index file at ``path``; returns the parsed index that was published and
    its version."""
    data = path.read_bytes()
    index = parse_index(data, str(path))
    container_name = container or setting("ADVISORY_CONTAINER")
    try:
        container_client = service.get_container_client(container_name)
        with contextlib.suppress(ResourceExistsError):
            container_client.create_container()
        uploaded = container_client.get_blob_client(INDEX_BLOB_NAME).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type="application/zstd"),
            metadata={
                "built": index.built.replace(":", "-"),
                "records": str(len(index.advisories)),
            },
        )
    except AzureError as error:
        raise TransientStoreError(
            f"cannot publish the advisory index to {container_name}/{INDEX_BLOB_NAME}: {error}"
        ) from error
    logger.info(
        "published advisory index built %s (%d advisories) to %s/%s",
        index.built,
        len(index.advisories),
        container_name,
        INDEX_BLOB_NAME,
    )
    return Published(index, index_version(index.built, str(uploaded["etag"])))


def index_published(service: BlobServiceClient, *, container: str | None = None) -> bool:
    """Whether an index has been published (a fresh storage account has none)."""
    container_name = container or setting("ADVISORY_CONTAINER")
    try:
        return bool(service.get_blob_client(container_name, INDEX_BLOB_NAME).exists())
    except AzureError as error:
        raise TransientStoreError(f"cannot check for the advisory index: {error}") from error


def index_etag(service: BlobServiceClient, *, container: str | None = None) -> str:
    """The published index blob's ETag: it changes with every publish."""
    container_name = container or setting("ADVISORY_CONTAINER")
    blob = service.get_blob_client(container_name, INDEX_BLOB_NAME)
    try:
        return str(blob.get_blob_properties().etag)
    except ResourceNotFoundError as error:
        raise NotFound(NO_INDEX_REASON) from error
    except AzureError as error:
        raise StoreError(f"cannot read the advisory index properties: {error}",
                         retryable=True) from error


def index_published_at(service: BlobServiceClient, *,
                       container: str | None = None) -> datetime | None:
    """When the advisory index was last published (its blob's last write); None: never."""
    container_name = container or setting("ADVISORY_CONTAINER")
    blob = service.get_blob_client(container_name, INDEX_BLOB_NAME)
    try:
        modified = blob.get_blob_properties().last_modified
    except ResourceNotFoundError:
        return None
    except AzureError as error:
        raise StoreError(f"cannot read the advisory index properties: {error}",
                         retryable=True) from error
    return modified if isinstance(modified, datetime) else None


def load_index_from_blob(
    service: BlobServiceClient, *, container: str | None = None
) -> AdvisoryIndex:
    container_name = container or setting("ADVISORY_CONTAINER")
    try:
        blob = service.get_blob_client(container_name, INDEX_BLOB_NAME)
        data = blob.download_blob().readall()
    except ResourceNotFoundError as error:
        raise NotFound(
            f"{NO_INDEX_REASON} at {container_name}/{INDEX_BLOB_NAME}: publish one with "
            "`acr-scan db publish FILE`"
        ) from error
    except AzureError as error:
        raise TransientStoreError(f"cannot read the advisory index: {error}") from error
    return parse_index(bytes(data), f"blob {container_name}/{INDEX_BLOB_NAME}")
