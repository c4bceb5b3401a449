"""The storage layout's version, kept in the ``meta`` table and checked when a store opens.

A store written by another layout is refused with a message that says so, rather than read
wrongly: rows under old keys would look absent and be scanned, billed or rescanned again.
Version 1 keyed an image by registry + digest; version 2 by registry + repository + digest.
Nothing deployed needs converting today; the next layout change adds its migration here.
"""

from __future__ import annotations

import contextlib
import secrets

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scanning.errors import ConfigError
from scanning.store.entities import as_int, read_entity, storage_errors

SCHEMA_VERSION = 2
PARTITION = "schema"
ROW = "layout"


def check_schema(meta: TableClient, images: TableClient) -> int:
    """Record the layout of a new store, or check an existing one's; its version.

    A store with image rows but no version row was written before the version was kept
    (layout 1)."""
    entity = read_entity(meta, PARTITION, ROW, "reading the storage layout version")
    if entity is None:
        with storage_errors("reading the images table"):
            older = next(iter(images.query_entities("PartitionKey ne ''", results_per_page=1,
                                                    select=["PartitionKey"])), None)
        if older is not None:
            raise ConfigError(_refusal(1))
        with storage_errors("writing the storage layout version"):
            try:
                meta.create_entity({"PartitionKey": PARTITION, "RowKey": ROW,
                                    "version": SCHEMA_VERSION})
            except ResourceExistsError:
                return check_schema(meta, images)  # another worker wrote it first
        return SCHEMA_VERSION
    version = as_int(entity.get("version"))
    if version != SCHEMA_VERSION:
        raise ConfigError(_refusal(version))
    return version


def _refusal(version: int) -> str:
    return (f"the store was written by storage layout {version}; this acr-scan reads layout "
            f"{SCHEMA_VERSION} and does not convert it: use a new STORE_PREFIX (or delete the "
            "old tables and containers) and let the catch-up job scan the registries again")


SECRET_PARTITION = "secrets"
DASHBOARD_SECRET_ROW = "dashboard"


def stored_secret(meta: TableClient, row: str) -> str:
    """A random secret kept in the ``meta`` table, made by whichever worker asks first.

    The table is private to the app (Entra-only storage), so a secret there is as safe as
    an app setting, and needs no secure template parameter with a generated default."""
    entity = read_entity(meta, SECRET_PARTITION, row, "reading a stored secret")
    if entity is not None and isinstance(entity.get("value"), str) and entity["value"]:
        return str(entity["value"])
    # Another worker may make it first (ResourceExistsError): theirs is read below.
    with storage_errors("writing a stored secret"), contextlib.suppress(ResourceExistsError):
        meta.create_entity({"PartitionKey": SECRET_PARTITION, "RowKey": row,
                            "value": secrets.token_hex(32)})
    entity = read_entity(meta, SECRET_PARTITION, row, "reading a stored secret")
    if entity is None or not isinstance(entity.get("value"), str) or not entity["value"]:
        raise ConfigError(f"the stored secret {row!r} in the meta table is missing or empty")
    return str(entity["value"])
