"""Helpers shared by the table modules: errors, typed properties, batches.

Property limits (Table service data model): a string property holds at most 64 KiB (32 K
UTF-16 code units), an entity at most 1 MiB and 252 custom properties. Integers are Int32
unless typed Edm.Int64 explicitly: the SDK refuses a Python int outside the Int32 range, so
every counter that may grow uses ``int64()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import zstandard
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TransactionOperation,
    UpdateMode,
)

from scanning.errors import NotFound, StoreError, TransientStoreError
from scanning.store import transactions

log = logging.getLogger(__name__)

# Azure Table transactions: at most 100 operations, all in one partition.
MAX_BATCH = 100
# 64 KiB per string property is 32,768 UTF-16 code units; keep a margin for surrogates.
MAX_TEXT = 30_000
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_CONFLICT_RETRIES = 20


@contextmanager
def storage_errors(operation: str) -> Iterator[None]:
    """Translate Azure SDK errors into the ScanError tree.

    ``ResourceNotFoundError`` becomes ``NotFound``; 408/429/5xx and connection failures become
    ``TransientStoreError`` (retryable); everything else ``StoreError``. Callers that expect
    ``ResourceExistsError`` (insert-if-absent) catch it inside the block.
    """
    try:
        yield
    except ResourceNotFoundError as error:
        raise NotFound(f"{operation}: not found") from error
    except ResourceExistsError as error:
        raise StoreError(f"{operation}: already exists") from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientStoreError(f"{operation}: storage unreachable: {error}") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        message = f"{operation}: storage answered {status}: {error.message}"
        if status in _TRANSIENT_STATUS:
            raise TransientStoreError(message) from error
        raise StoreError(message) from error
    except AzureError as error:
        raise StoreError(f"{operation}: {error}") from error


def inflate(data: bytes, limit: int, what: str) -> bytes:
    """Decompress a zstd value of ours, refusing more than ``limit`` bytes (a corrupt or
    hostile value must not take unbounded memory); StoreError when unreadable."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            part = reader.read(1024 * 1024)
            if not part:
                break
            parts.append(part)
            size += len(part)
    except zstandard.ZstdError as error:
        raise StoreError(f"{what} is unreadable: {error}") from error
    if size > limit:
        raise StoreError(f"{what} inflates beyond {limit} bytes")
    return b"".join(parts)


def utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def as_datetime(value: object) -> datetime | None:
    """Read a DateTime property back as a plain aware ``datetime`` (or None when unset)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, tzinfo=UTC,
        )
    raise StoreError(f"expected a DateTime property, got {value!r}")


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def as_int(value: object, default: int = 0) -> int:
    """Read an Int32 or Int64 property (the SDK returns Int64 as an ``EntityProperty``)."""
    if value is None:
        return default
    if isinstance(value, EntityProperty):
        return int(value.value)
    if isinstance(value, bool):
        raise StoreError(f"expected an integer property, got {value!r}")
    if isinstance(value, int):
        return value
    raise StoreError(f"expected an integer property, got {value!r}")


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def bounded_text(text: str, limit: int = MAX_TEXT) -> str:
    """Cut text that would overflow a string property; the cut is marked, never silent.

    ``limit`` counts UTF-16 code units, as the service does (a character outside the BMP
    takes two).
    """
    if len(text) * 2 <= limit:
        return text  # even all outside the BMP, it fits (the common case: no encoding)
    encoded = text.encode("utf-16-le")
    if len(encoded) <= 2 * limit:
        return text
    marker = " [truncated]"
    # errors="ignore" drops a surrogate pair cut in half.
    return encoded[: 2 * (limit - len(marker))].decode("utf-16-le", errors="ignore") + marker


def bounded_json_list(items: Iterable[Any], limit: int = MAX_TEXT) -> str:
    """JSON array of as many leading items as fit in one string property."""
    kept: list[Any] = []
    size = 2
    for item in items:
        item_size = len(json.dumps(item)) + 1
        if size + item_size > limit:
            break
        kept.append(item)
        size += item_size
    return json.dumps(kept)


def json_list(value: object) -> list[Any]:
    if not isinstance(value, str) or not value:
        return []
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as error:
        raise StoreError(f"stored JSON list is malformed: {value[:80]!r}") from error
    if not isinstance(loaded, list):
        raise StoreError(f"stored JSON is not a list: {value[:80]!r}")
    return loaded


def submit_batches(
    table: TableClient, operations: Iterable[tuple[TransactionOperation, Mapping[str, Any]]],
    operation: str,
) -> int:
    """Submit operations in transactions of at most 100, grouped by partition.

    Each transaction is atomic; the whole set is not (what must change all at once goes in
    one entity, as an image's assessment and its findings do, see ``findings``).
    """
    by_partition: dict[str, list[tuple[TransactionOperation, Mapping[str, Any]]]] = {}
    for op in operations:
        by_partition.setdefault(str(op[1]["PartitionKey"]), []).append(op)
    submitted = 0
    for batch_ops in by_partition.values():
        for start in range(0, len(batch_ops), MAX_BATCH):
            chunk = batch_ops[start : start + MAX_BATCH]
            with storage_errors(operation):
                transactions.submit(table, chunk)
            submitted += len(chunk)
    return submitted


def etag_of(entity: Mapping[str, Any]) -> str:
    metadata = getattr(entity, "metadata", None) or {}
    return str(metadata.get("etag", ""))


def read_entity(table: TableClient, partition_key: str, row_key: str,
                operation: str) -> TableEntity | None:
    """One entity, or None when it does not exist."""
    with storage_errors(operation):
        try:
            return table.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None


def modify_entity(
    table: TableClient, partition_key: str, row_key: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    operation: str,
) -> dict[str, Any] | None:
    """Read-modify-write one entity under an ETag condition, retried on conflict.

    ``change`` gets the current properties (None when the entity does not exist) and returns
    the full new properties (written with REPLACE), or None to leave it as it is; it may run
    more than once, so it must not have side effects. Returns what was written, or the
    current properties when ``change`` declined (None if there is no entity).
    """
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = read_entity(table, partition_key, row_key, operation)
        updated = change(dict(current) if current is not None else None)
        if updated is None:
            return dict(current) if current is not None else None
        updated.update(PartitionKey=partition_key, RowKey=row_key)
        with storage_errors(operation):
            try:
                if current is None:
                    table.create_entity(updated)
                else:
                    table.update_entity(
                        updated, mode=UpdateMode.REPLACE, etag=etag_of(current),
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                # Someone else created, changed or deleted it first: read again, redo.
                log.debug("%s: write conflict, retrying", operation)
                continue
        return updated
    raise TransientStoreError(
        f"{operation}: the entity kept changing, gave up after {MAX_CONFLICT_RETRIES} attempts"
    )
