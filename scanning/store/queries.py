"""Query Entities answers read with orjson instead of the SDK's generated models.

azure-data-tables 12.7 deserialises each page of ``TableClient.query_entities`` twice: first
into its generated ``TableEntityQueryResponse`` model (msrest-style, one Python call and an
``eval`` per property value), then into entities (``_convert_to_entity``). The first costs
more than the second: ~0.2-0.4 ms of client CPU per image row, paid by the weekly rescan for
every pulled image (its listing) and again for every re-matched one (its chunk's rows and
inventory copies). ``query_entities`` here sends the same request through the table client's
own pipeline (its credential, retry, headers and logging policies), reads the page with
orjson, and converts each entity step for step as the SDK's ``_convert_to_entity`` does
(``_entity``; a test compares the two), so callers get the entities the SDK would give, ETags
and typed values included. The one difference is speed: the service's datetimes (``...Z``)
are read with ``datetime.fromisoformat`` instead of two ``strptime`` calls (~20 us each, seven
to a row of the image table); other typed values go through the SDK's own converters.

The request is the SDK's (``build_table_query_entities_request``): ``GET /<table>()`` with
``$filter``, ``$select``, ``$top`` and the continuation (``NextPartitionKey`` /
``NextRowKey``) from the previous page's ``x-ms-continuation-*`` headers. Errors are decoded
by the SDK's ``_decode_error``, so they are the exceptions the SDK raises. Cosmos endpoints go
to ``TableClient.query_entities`` unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import orjson
from azure.core.exceptions import DecodeError
from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, TableClient, TableEntity
from azure.data.tables._deserialize import (
    _ENTITY_TO_PYTHON_CONVERSIONS,
    TablesEntityDatetime,
    _from_entity_datetime,
    url_quote,
)
from azure.data.tables._error import _decode_error, _validate_tablename_error
from azure.data.tables._serialize import _parameter_filter_substitution

_ACCEPT = "application/json;odata=minimalmetadata"
_INT32 = 2**31
_CONVERSIONS: dict[Any, Any] = dict(_ENTITY_TO_PYTHON_CONVERSIONS)
_NEXT_PARTITION = "x-ms-continuation-NextPartitionKey"
_NEXT_ROW = "x-ms-continuation-NextRowKey"


def query_entities(table: TableClient, query_filter: str, *,
                   select: Sequence[str] | None = None,
                   parameters: Mapping[str, Any] | None = None,
                   results_per_page: int | None = None) -> Iterator[TableEntity]:
    """What ``table.query_entities(query_filter, select=..., parameters=...,
    results_per_page=...)`` yields, page by page (a page is read when the previous one is
    used up)."""
    if table._cosmos_endpoint:
        yield from table.query_entities(query_filter, select=list(select) if select else None,
                                        parameters=dict(parameters) if parameters else None,
                                        results_per_page=results_per_page)
        return
    substituted = _parameter_filter_substitution(dict(parameters) if parameters else None,
                                                 query_filter)
    url = f"{table.scheme}://{table._primary_hostname}/{quote(table.table_name, safe='')}()"
    headers = {"x-ms-version": table.api_version, "DataServiceVersion": "3.0",
               "Accept": _ACCEPT}
    fixed: dict[str, str] = {}
    if results_per_page is not None:
        fixed["$top"] = str(results_per_page)
    if select:
        fixed["$select"] = ",".join(select)
    if substituted:
        fixed["$filter"] = substituted
    next_partition: str | None = None
    next_row: str | None = None
    while True:
        params = dict(fixed)
        if next_partition is not None:
            params["NextPartitionKey"] = next_partition
        if next_row is not None:
            params["NextRowKey"] = next_row
        # Streamed, so the pipeline's ContentDecodePolicy does not parse the page with json
        # first (the SDK's deserialisation reads that parse; orjson reads the bytes here).
        response = table._client.send_request(
            HttpRequest("GET", url, params=params, headers=headers), stream=True)
        response.read()
        if response.status_code != 200:
            decoded = _decode_error(response)
            _validate_tablename_error(decoded, table.table_name)
            raise decoded
        try:
            page = orjson.loads(response.content)
            entries = page["value"]
            if not isinstance(entries, list):
                raise TypeError(f"value is {type(entries).__name__}")
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise DecodeError(f"unreadable Query Entities answer from {table.table_name}: "
                              f"{error}", response=response) from error
        for entry in entries:
            if not isinstance(entry, dict):
                raise DecodeError(f"unreadable Query Entities answer from {table.table_name}: "
                                  f"an entity is {type(entry).__name__}", response=response)
            yield _entity(entry)
        next_partition = response.headers.get(_NEXT_PARTITION)
        next_row = response.headers.get(_NEXT_ROW)
        if not next_partition and not next_row:
            return


def _datetime(value: str) -> datetime.datetime:
    """``_from_entity_datetime``'s value: a ``TablesEntityDatetime`` in UTC (fractions past
    microseconds cut) that remembers the service's text."""
    if not value.endswith("Z"):
        return cast(datetime.datetime, _from_entity_datetime(value))
    try:
        moment = TablesEntityDatetime.fromisoformat(value)
    except ValueError:
        return cast(datetime.datetime, _from_entity_datetime(value))
    moment._service_value = value  # type: ignore[attr-defined]
    return moment


def _entity(entry: dict[str, Any]) -> TableEntity:
    """``_convert_to_entity(entry)`` (azure/data/tables/_deserialize.py), step for step."""
    entity = TableEntity()
    properties: dict[str, Any] = {}
    types: dict[str, str] = {}
    odata: dict[str, Any] = {}
    for name, value in entry.items():
        if name.startswith("odata."):
            odata[name[6:]] = value
        elif name.endswith("@odata.type"):
            types[name[:-11]] = value
        else:
            properties[name] = value
    partition_key = properties.pop("PartitionKey", None)
    if partition_key is not None:
        entity["PartitionKey"] = partition_key
    row_key = properties.pop("RowKey", None)
    if row_key is not None:
        entity["RowKey"] = row_key
    timestamp = properties.pop("Timestamp", None)
    for name, value in properties.items():
        edm = types.get(name)
        if edm is None:
            # Untyped JSON: kept as it is, but for an integer past Int32 (the SDK's Int64).
            if type(value) is int and not -_INT32 <= value < _INT32:
                entity[name] = EntityProperty(value, EdmType.INT64)
            else:
                entity[name] = value
        elif edm == "Edm.String" or edm == "Edm.Int32":
            entity[name] = value
        elif edm == "Edm.DateTime":
            entity[name] = _datetime(value)
        else:
            convert: Any = _CONVERSIONS.get(edm)
            entity[name] = convert(value) if convert is not None else EntityProperty(edm, value)
    etag = odata.pop("etag", None)
    odata.pop("metadata", None)
    if timestamp:
        if not etag:
            etag = "W/\"datetime'" + url_quote(timestamp) + "'\""
        timestamp = _datetime(timestamp)
    odata.update({"etag": etag, "timestamp": timestamp})
    entity._metadata = cast(Any, odata)
    return entity
