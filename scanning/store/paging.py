"""Paged table queries with opaque continuation tokens.

A list API returns a ``Page``: up to ``page_size`` items and ``next_token``, an opaque string
to pass back for the next page (None when there is no more). The token wraps the Table
service's own continuation (NextPartitionKey/NextRowKey) plus how many entities of that
service page were already returned, so a client-side filter (``predicate``) never loses or
repeats an item between pages.

A page may hold fewer than ``page_size`` items even when more follow (a selective filter over
a large table stops after ``MAX_SERVICE_PAGES`` service pages so one call stays bounded):
clients follow ``next_token`` until it is None.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from azure.data.tables import TableClient

from scanning.errors import BadRequest
from scanning.store.entities import storage_errors

T = TypeVar("T")

MAX_PAGE_SIZE = 1000  # the Table service returns at most 1,000 entities per request
MAX_SERVICE_PAGES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_token: str | None


def encode_token(service_token: Mapping[str, str] | None, skip: int, part: int = 0) -> str:
    """``skip`` entities of the service page are done; of the next one, ``part`` items (a
    caller that makes several items of one entity)."""
    payload: dict[str, Any] = {"v": 1, "pk": None, "rk": None, "skip": skip}
    if part:
        payload["part"] = part
    if service_token:
        payload["pk"] = service_token.get("PartitionKey")
        payload["rk"] = service_token.get("RowKey")
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[dict[str, str] | None, int]:
    """Return the service continuation and the skip count; BadRequest on a foreign token."""
    service, skip, _part = decode_token_part(token)
    return service, skip


def decode_token_part(token: str) -> tuple[dict[str, str] | None, int, int]:
    """``decode_token`` and the ``part`` count of ``encode_token``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise BadRequest("continuation token is malformed") from error
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise BadRequest("continuation token is malformed")
    skip, part = payload.get("skip"), payload.get("part", 0)
    partition_key, row_key = payload.get("pk"), payload.get("rk")
    if (not isinstance(skip, int) or skip < 0 or not isinstance(part, int) or part < 0
            or isinstance(skip, bool) or isinstance(part, bool)):
        raise BadRequest("continuation token is malformed")
    if partition_key is None and row_key is None:
        return None, skip, part
    if not isinstance(partition_key, str) or not isinstance(row_key, (str, type(None))):
        raise BadRequest("continuation token is malformed")
    service: dict[str, str] = {"PartitionKey": partition_key}
    if row_key is not None:
        service["RowKey"] = row_key
    return service, skip, part


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BadRequest(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def query_page(
    table: TableClient,
    *,
    query_filter: str,
    parameters: Mapping[str, Any] | None,
    page_size: int,
    token: str | None,
    convert: Callable[[Mapping[str, Any]], T],
    predicate: Callable[[Mapping[str, Any]], bool] | None = None,
    operation: str = "query",
    select: tuple[str, ...] | None = None,
) -> Page[T]:
    """One page of ``convert(entity)`` for the entities that match the filter and predicate.

    An empty ``query_filter`` lists the whole table; ``select`` names the columns to read
    (all when None).
    """
    check_page_size(page_size)
    service_token, skip = decode_token(token) if token else (None, 0)
    items: list[T] = []
    with storage_errors(operation):
        if query_filter:
            paged = table.query_entities(
                query_filter, parameters=dict(parameters or {}), results_per_page=page_size,
                select=list(select) if select else None)
        else:
            paged = table.list_entities(results_per_page=page_size,
                                        select=list(select) if select else None)
        # The Tables SDK takes and returns its continuation as a dict, despite the type hints.
        pages: Any = paged.by_page(continuation_token=cast(Any, service_token))
        page_start = service_token
        for service_pages, page in enumerate(pages, start=1):
            entities = list(page)
            next_service = pages.continuation_token
            for index in range(skip, len(entities)):
                entity = entities[index]
                if predicate is not None and not predicate(entity):
                    continue
                items.append(convert(entity))
                if len(items) == page_size:
                    if index + 1 < len(entities):
                        next_token = encode_token(page_start, index + 1)
                        return Page(items=tuple(items), next_token=next_token)
                    return Page(
                        items=tuple(items),
                        next_token=encode_token(next_service, 0) if next_service else None,
                    )
            if not next_service:
                break
            page_start, skip = next_service, 0
            if service_pages >= MAX_SERVICE_PAGES:
                return Page(items=tuple(items), next_token=encode_token(next_service, 0))
    return Page(items=tuple(items), next_token=None)
