"""Entity group transactions (``$batch``) written and read without the ``email`` package.

azure-data-tables 12.7 sends ``TableClient.submit_transaction`` through azure-core's multipart
support, which renders the request with ``email.generator``, parses every answer part with
``email.parser`` and ``http.client`` and runs the parts' response policies in a new thread
pool: 0.5-1 ms of client CPU per entity, most of a row merge's client cost. ``submit``
renders the same request body as text and reads the answer's status lines and ETags itself,
and sends it as one request through the table client's own pipeline (its credential, retry,
headers and logging policies), so only the body's rendering and reading change.

The format is OData's batch format as the Table service documents it ("Performing entity
group transactions"): a ``multipart/mixed`` body with a ``batch_<uuid>`` boundary holding one
``changeset_<uuid>`` part with one ``application/http`` part per operation. The service answers
202 with one part per operation, or, when the changeset fails, one part: the failing
operation's status and an OData error whose message starts with ``<index>:``.

Each operation is rendered as the SDK renders it (``azure/data/tables/_table_batch.py``): the
same URLs, headers (``If-Match`` for conditional updates and deletes) and entity JSON, through
the SDK's own property serialisation (``_add_entity_properties``), and errors are decoded by the
SDK's ``_decode_error`` into the exceptions it raises. Anything this does not render the SDK's
way (Cosmos endpoints, extra per-operation keywords, malformed operations, whose errors the SDK
words itself) goes to ``TableClient.submit_transaction`` unchanged.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from wsgiref.handlers import format_date_time

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse
from azure.core.serialization import AzureJSONEncoder
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode
from azure.data.tables._error import (
    RequestTooLargeError,
    _decode_error,
    _validate_tablename_error,
)
from azure.data.tables._generated._vendor import prep_if_match
from azure.data.tables._serialize import (
    _add_entity_properties,
    _get_match_condition,
    _prepare_key,
)

# The keywords each operation may carry that this module renders as the SDK does; any other
# keyword (timeout, headers, ...) sends the transaction through the SDK.
_KEYWORDS = {
    "create": frozenset(),
    "upsert": frozenset({"mode"}),
    "update": frozenset({"mode", "etag", "match_condition"}),
    "delete": frozenset({"etag", "match_condition"}),
}
# What the SDK's request builders send as Accept (azure/data/tables/_generated/operations).
_ACCEPT_MINIMAL_METADATA = "application/json;odata=minimalmetadata"
_ACCEPT_JSON = "application/json"
_CRLF = "\r\n"
_TOO_LARGE = "The transaction request was too large"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Operation:
    """One operation as its part of the changeset says it."""

    method: str
    url: str
    accept: str
    if_match: str | None
    body: str | None  # entity JSON (ASCII: the encoder escapes everything else)


@dataclass(frozen=True, slots=True, kw_only=True)
class _PartResponse:
    """One ``application/http`` part of the answer."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class _Unsupported(Exception):
    """An operation this module does not render the SDK's way."""


def submit(table: TableClient,
           operations: Iterable[tuple[Any, ...]]) -> list[Mapping[str, Any]]:
    """Commit ``operations`` (``submit_transaction``'s tuples) as one transaction.

    Returns what ``TableClient.submit_transaction`` returns (per operation, ``{"etag": ...}``
    or ``{}``) and raises what it raises: ``TableTransactionError`` (``index``: the failing
    operation) when the changeset fails, ``RequestTooLargeError``, ``ResourceNotFoundError``
    and the like when the whole request fails.
    """
    listed = list(operations)
    try:
        rendered = _render_operations(table, listed)
    except (_Unsupported, TypeError, ValueError):
        # The SDK decides what to do with it, and words its own errors for malformed input.
        return table.submit_transaction(listed)
    batch_boundary = f"batch_{uuid.uuid4()}"
    request = HttpRequest(
        "POST", f"{table.scheme}://{table._primary_hostname}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch_boundary}",
            "Accept": "application/json",
        },
        content=_transaction_body(rendered, table.api_version, batch_boundary,
                                 f"changeset_{uuid.uuid4()}", format_date_time(time.time())),
    )
    response = table._client.send_request(request, stream=True)
    response.read()
    return _read_answer(table.table_name, response, rendered)


def _render_operations(table: TableClient, operations: Sequence[tuple[Any, ...]]
                       ) -> list[_Operation]:
    if table._cosmos_endpoint or not operations:
        # Cosmos takes merges as POSTs with X-HTTP-Method; an empty changeset is refused by
        # the service, which the SDK turns into an empty answer.
        raise _Unsupported
    table_url = f"{table.scheme}://{table._primary_hostname}/{quote(table.table_name, safe='')}"
    partition_key = None
    rendered = []
    for operation in operations:
        kind, entity, keywords = _unpack(operation)
        if "PartitionKey" not in entity or "RowKey" not in entity:
            raise _Unsupported
        if partition_key is None:
            partition_key = entity["PartitionKey"]
        elif entity["PartitionKey"] != partition_key:
            raise _Unsupported
        rendered.append(_render(kind, entity, keywords, table_url))
    return rendered


def _unpack(operation: tuple[Any, ...]) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    if len(operation) == 3:
        kind, entity, keywords = operation
    elif len(operation) == 2:
        (kind, entity), keywords = operation, {}
    else:
        raise _Unsupported
    if not isinstance(kind, str) or not isinstance(entity, Mapping) \
            or not isinstance(keywords, Mapping):
        raise _Unsupported
    kind = kind.lower()  # TransactionOperation is a str enum; the SDK takes plain names too
    if kind not in _KEYWORDS or not set(keywords) <= _KEYWORDS[kind]:
        raise _Unsupported
    return kind, entity, keywords


def _render(kind: str, entity: Mapping[str, Any], keywords: Mapping[str, Any],
            table_url: str) -> _Operation:
    """One operation as ``TableBatchOperations.<kind>`` renders it (same key and property
    conversions in the same order, so the same values and errors)."""
    if kind == "create":
        return _Operation(method="POST", url=table_url, accept=_ACCEPT_MINIMAL_METADATA,
                          if_match=None, body=_entity_json(_add_entity_properties(entity)))
    if kind == "upsert":
        url = _entity_url(table_url, entity)
        return _Operation(method=_update_method(keywords.get("mode", UpdateMode.MERGE)),
                          url=url, accept=_ACCEPT_JSON, if_match=None,
                          body=_entity_json(_add_entity_properties(entity)))
    etag, match_condition = keywords.get("etag"), keywords.get("match_condition")
    if kind == "delete":
        if match_condition and not etag and isinstance(entity, TableEntity):
            etag = entity.metadata.get("etag")  # as the SDK does: the entity's own ETag
        return _Operation(method="DELETE", url=_entity_url(table_url, entity),
                          accept=_ACCEPT_MINIMAL_METADATA,
                          if_match=_if_match(etag, match_condition), body=None)
    # An update converts the entity first, so (unlike a delete) it never finds a
    # TableEntity's own ETag: the SDK then refuses IfNotModified without one.
    properties = _add_entity_properties(entity)
    return _Operation(method=_update_method(keywords.get("mode", UpdateMode.MERGE)),
                      url=_entity_url(table_url, properties), accept=_ACCEPT_JSON,
                      if_match=_if_match(etag, match_condition), body=_entity_json(properties))


def _if_match(etag: str | None, match_condition: MatchConditions | None) -> str | None:
    condition = _get_match_condition(
        etag=etag, match_condition=match_condition or MatchConditions.Unconditionally)
    return prep_if_match(etag, condition)


def _update_method(mode: Any) -> str:
    if mode == UpdateMode.MERGE:
        return "PATCH"
    if mode == UpdateMode.REPLACE:
        return "PUT"
    raise _Unsupported


def _entity_url(table_url: str, entity: Mapping[str, Any]) -> str:
    partition_key = quote(_prepare_key(entity["PartitionKey"]), safe="")
    row_key = quote(_prepare_key(entity["RowKey"]), safe="")
    return f"{table_url}(PartitionKey='{partition_key}',RowKey='{row_key}')"


def _entity_json(properties: Mapping[str, Any]) -> str:
    # azure-core's HttpRequest(json=...) encoding, which the SDK's builders use.
    return json.dumps(properties, cls=AzureJSONEncoder)


def _transaction_body(operations: Sequence[_Operation], api_version: str, batch_boundary: str,
                     changeset_boundary: str, date: str) -> bytes:
    """The ``$batch`` request body, byte for byte what azure-core renders for the SDK's
    requests (CRLF line ends, a ``Content-ID`` per part, the date headers the SDK's
    ``StorageHeadersPolicy`` gives each part)."""
    lines = [f"--{batch_boundary}",
             f"Content-Type: multipart/mixed; boundary={changeset_boundary}", ""]
    for index, operation in enumerate(operations):
        lines += [f"--{changeset_boundary}", "Content-Type: application/http",
                  "Content-Transfer-Encoding: binary", f"Content-ID: {index}", "",
                  f"{operation.method} {operation.url} HTTP/1.1"]
        if operation.body is not None:
            lines += ["Content-Type: application/json",
                      f"Content-Length: {len(operation.body)}"]
        lines += [f"x-ms-version: {api_version}", "DataServiceVersion: 3.0",
                  f"Accept: {operation.accept}"]
        if operation.if_match is not None:
            lines.append(f"If-Match: {operation.if_match}")
        lines += [f"x-ms-date: {date}", f"Date: {date}", "", operation.body or ""]
    lines += [f"--{changeset_boundary}--", "", f"--{batch_boundary}--", ""]
    return _CRLF.join(lines).encode("utf-8")


def _read_answer(table_name: str, response: HttpResponse,
                 operations: Sequence[_Operation]) -> list[Mapping[str, Any]]:
    """What ``_batch_send`` makes of the service's answer (azure/data/tables/_base_client.py)."""
    if response.status_code == 413:
        raise _decode_error(response, error_message=_TOO_LARGE, error_type=RequestTooLargeError)
    if response.status_code != 202:
        decoded = _decode_error(response)
        _validate_tablename_error(decoded, table_name)
        raise decoded
    parts = _read_parts(response.content, response.headers.get("Content-Type", ""))
    failed = [(index, part) for index, part in enumerate(parts)
              if not 200 <= part.status < 300]
    if failed:
        index, part = failed[0]
        if part.status == 413:
            raise _decode_error(response, error_message=_TOO_LARGE,
                                error_type=RequestTooLargeError)
        decoded = _decode_error(response=_sdk_part_response(part, operations, index),
                                error_type=TableTransactionError)
        _validate_tablename_error(decoded, table_name)
        raise decoded
    if len(parts) != len(operations):
        # The SDK would return the shorter list; an operation without an answer is not done.
        raise HttpResponseError(
            message=f"the transaction's answer has {len(parts)} parts for "
                    f"{len(operations)} operations", response=response)
    metadata: list[Mapping[str, Any]] = []
    for part in parts:
        etag = _header(part.headers, "ETag")
        metadata.append({"etag": etag} if etag is not None else {})
    return metadata


def _read_parts(body: bytes, content_type: str) -> list[_PartResponse]:
    """The ``application/http`` parts of a ``multipart/mixed`` body, changesets flattened in
    order (RFC 2046 section 5.1: a part runs from its boundary line to the CRLF before the
    next; the SDK's parser takes the same nesting)."""
    parts: list[_PartResponse] = []
    for headers, content in _multipart(body, _boundary(content_type)):
        part_type = _header(headers, "Content-Type") or ""
        if part_type.startswith("multipart/mixed"):
            parts += _read_parts(content, part_type)
        elif part_type.startswith("application/http"):
            parts.append(_http_response(content))
        else:
            raise ValueError("Multipart doesn't support part other than application/http for now")
    return parts


def _boundary(content_type: str) -> bytes:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("ascii")
    raise ValueError(f"a multipart answer without a boundary: {content_type!r}")


def _multipart(body: bytes, boundary: bytes) -> list[tuple[list[tuple[str, str]], bytes]]:
    """(headers, content) of each body part between ``--boundary`` lines."""
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:  # [0]: the preamble
        if chunk.startswith(b"--"):
            break  # the close delimiter
        line_end = chunk.find(b"\n")
        if line_end < 0:
            raise ValueError("a multipart answer cut inside a boundary line")
        content = chunk[line_end + 1:]
        # The line break before the next boundary belongs to that boundary.
        content = content.removesuffix(b"\n").removesuffix(b"\r")
        header_block, body_part = _split_head(content)
        parts.append((_header_lines(header_block), body_part))
    return parts


def _http_response(content: bytes) -> _PartResponse:
    head, body = _split_head(content)
    status_line, _, header_block = head.partition("\n")
    version, _, rest = status_line.rstrip("\r").partition(" ")
    status, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not status.isdigit():
        raise ValueError(f"an answer part without an HTTP status line: {status_line[:80]!r}")
    return _PartResponse(status=int(status), reason=reason.strip(),
                         headers=tuple(_header_lines(header_block)), body=body)


def _split_head(content: bytes) -> tuple[str, bytes]:
    """Headers (as text) and body of a MIME part or an HTTP message."""
    end = content.find(b"\r\n\r\n")
    if end >= 0:
        return content[:end].decode("latin-1"), content[end + 4:]
    end = content.find(b"\n\n")
    if end >= 0:
        return content[:end].decode("latin-1"), content[end + 2:]
    return content.decode("latin-1"), b""


def _header_lines(block: str) -> list[tuple[str, str]]:
    headers = []
    for line in block.split("\n"):
        name, separator, value = line.partition(":")
        if separator:
            headers.append((name.strip(), value.strip()))
    return headers


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), None)


class _BufferedPart:
    """The ``http.client.HTTPResponse`` surface azure-core's part response reads."""

    def __init__(self, part: _PartResponse) -> None:
        self.status = part.status
        self.reason = part.reason
        self._headers = list(part.headers)
        self._body = part.body

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers

    def read(self) -> bytes:
        return self._body

    def close(self) -> None:
        pass


def _sdk_part_response(part: _PartResponse, operations: Sequence[_Operation],
                       index: int) -> RestHttpClientTransportResponse:
    """The failing part as the SDK hands it to ``_decode_error``: azure-core's response type
    for a part, its request the operation at the part's position (the SDK pairs parts with
    requests by position, so a failed changeset's single part gets the first operation)."""
    operation = operations[min(index, len(operations) - 1)]
    return RestHttpClientTransportResponse(
        request=HttpRequest(operation.method, operation.url),
        internal_response=_BufferedPart(part))
