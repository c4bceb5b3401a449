"""Transactions rendered without the email package (``scanning.store.transactions``) against
the SDK's ``submit_transaction`` on Azurite: the same request bytes, the same stored entities,
the same answers and the same errors."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableErrorCode,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from scanning.local.services import Azurite
from scanning.store import transactions
from scanning.store.entities import submit_batches
from scanning.store.transactions import submit

pytestmark = pytest.mark.integration

PARTITION = "p'é \"q %+&="
AT = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
TEXT = "quote ' double \" backslash \\ é ✓ 𝄞 \r\n tab\t"
GUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
TYPED = {
    "PartitionKey": PARTITION, "RowKey": "typed'ü ~",
    "binary": bytes(range(256)) * 12, "empty_binary": b"",
    "int64": EntityProperty(2**40 + 7, EdmType.INT64),
    "int64_min": EntityProperty(-(2**63), EdmType.INT64),
    "int32": 2**31 - 1, "negative": -5, "at": AT, "yes": True, "no": False, "ratio": 0.1,
    "big": 1e300, "whole": 2.0, "text": TEXT, "empty": "", "guid": GUID, "unset": None,
}
# What reading TYPED back gives: (type name, value); ``unset`` (None) is not stored.
TYPED_READ = {
    "PartitionKey": ("str", PARTITION), "RowKey": ("str", "typed'ü ~"),
    "binary": ("bytes", bytes(range(256)) * 12), "empty_binary": ("bytes", b""),
    "int64": ("EntityProperty", EntityProperty(2**40 + 7, EdmType.INT64)),
    "int64_min": ("EntityProperty", EntityProperty(-(2**63), EdmType.INT64)),
    "int32": ("int", 2**31 - 1), "negative": ("int", -5), "at": ("TablesEntityDatetime", AT),
    "yes": ("bool", True), "no": ("bool", False), "ratio": ("float", 0.1),
    "big": ("float", 1e300), "whole": ("float", 2.0), "text": ("str", TEXT),
    "empty": ("str", ""), "guid": ("UUID", GUID),
}
IF_NOT_MODIFIED = MatchConditions.IfNotModified


@dataclass(slots=True)
class Recorded:
    """A fresh table whose client keeps the body of every ``$batch`` request it sends."""

    table: TableClient
    bodies: list[bytes]

    def etag(self, row_key: str) -> str:
        return str(self.table.get_entity(PARTITION, row_key).metadata["etag"])

    def rows(self) -> dict[str, dict[str, Any]]:
        return {entity["RowKey"]: dict(entity) for entity in self.table.list_entities()}


def _recorded(azurite: Azurite) -> Recorded:
    bodies: list[bytes] = []

    def record(request: PipelineRequest[Any]) -> None:
        if request.http_request.url.endswith("/$batch"):
            bodies.append(request.http_request.content)

    table = TableClient.from_connection_string(
        azurite.connection_string, "t" + uuid.uuid4().hex[:12], raw_request_hook=record)
    table.create_table()
    for row_key in ("kept", "merged", "replaced", "deleted", "guarded"):
        table.create_entity({"PartitionKey": PARTITION, "RowKey": row_key, "before": row_key,
                             "count": 1})
    return Recorded(table=table, bodies=bodies)


@pytest.fixture()
def sdk(azurite: Azurite) -> Iterator[Recorded]:
    """Written with ``TableClient.submit_transaction``."""
    recorded = _recorded(azurite)
    yield recorded
    recorded.table.delete_table()


@pytest.fixture()
def ours(azurite: Azurite) -> Iterator[Recorded]:
    """Written with ``transactions.submit``."""
    recorded = _recorded(azurite)
    yield recorded
    recorded.table.delete_table()


def _mixed(recorded: Recorded) -> list[tuple[Any, ...]]:
    """Every kind of operation, conditional ones on the rows' current ETags."""
    return [
        (TransactionOperation.CREATE, TYPED),
        (TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "upserted",
                                       "text": TEXT}),
        (TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "kept",
                                       "count": 2}, {"mode": UpdateMode.REPLACE}),
        (TransactionOperation.UPDATE, {"PartitionKey": PARTITION, "RowKey": "merged",
                                       "count": EntityProperty(2**40, EdmType.INT64)},
         {"mode": UpdateMode.MERGE, "etag": recorded.etag("merged"),
          "match_condition": IF_NOT_MODIFIED}),
        (TransactionOperation.UPDATE, {"PartitionKey": PARTITION, "RowKey": "replaced",
                                       "at": AT}, {"mode": "replace"}),
        (TransactionOperation.DELETE, {"PartitionKey": PARTITION, "RowKey": "deleted"},
         {"etag": recorded.etag("deleted"), "match_condition": IF_NOT_MODIFIED}),
        ("delete", {"PartitionKey": PARTITION, "RowKey": "guarded"}),
    ]


def _normalised(recorded: Recorded, body: bytes, etags: Sequence[str]) -> bytes:
    """The body without what differs between two sends: boundaries, dates, table, ETags."""
    body = re.sub(rb"(batch|changeset)_[0-9a-f-]{36}", rb"\1_ID", body)
    body = re.sub(rb"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", b"DATE", body)
    body = body.replace(recorded.table.table_name.encode(), b"TABLE")
    for etag in etags:
        body = body.replace(etag.encode(), b"ETAG")
    return body


def _failure(error: TableTransactionError) -> tuple[Any, ...]:
    message = re.sub(r"\n(RequestId|Time):[^\n]*", "", error.message)
    return (type(error).__name__, error.index, error.status_code, error.reason,
            error.error_code, message, type(error.response).__name__)


def _typed(entity: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {name: (type(value).__name__, value) for name, value in entity.items()}


def test_request_body_is_the_sdks_byte_for_byte(sdk: Recorded, ours: Recorded) -> None:
    sdk_etags = [sdk.etag("merged"), sdk.etag("deleted")]
    our_etags = [ours.etag("merged"), ours.etag("deleted")]
    sdk.table.submit_transaction(_mixed(sdk))
    submit(ours.table, _mixed(ours))
    assert (len(ours.bodies), _normalised(ours, ours.bodies[0], our_etags)) == (
        1, _normalised(sdk, sdk.bodies[0], sdk_etags))


def test_edm_types_round_trip_exactly(ours: Recorded) -> None:
    submit(ours.table, [(TransactionOperation.UPSERT, TYPED)])
    assert _typed(dict(ours.table.get_entity(PARTITION, TYPED["RowKey"]))) == TYPED_READ


def test_mixed_operations_leave_the_table_as_the_sdk_does(sdk: Recorded,
                                                         ours: Recorded) -> None:
    sdk.table.submit_transaction(_mixed(sdk))
    submit(ours.table, _mixed(ours))
    stored = {row_key: _typed(row) for row_key, row in ours.rows().items()}
    assert (stored, sorted(stored)) == (
        {row_key: _typed(row) for row_key, row in sdk.rows().items()},
        ["kept", "merged", "replaced", "typed'ü ~", "upserted"])


def test_answer_is_each_operations_new_etag(ours: Recorded) -> None:
    answer = submit(ours.table, _mixed(ours))
    assert answer == [{"etag": ours.etag(row_key)} for row_key in (
        "typed'ü ~", "upserted", "kept", "merged", "replaced")] + [{}, {}]


def _stale(recorded: Recorded) -> list[tuple[Any, ...]]:
    operations = _mixed(recorded)
    # Someone else changes the row after it was read: operation 3's ETag is stale.
    recorded.table.update_entity({"PartitionKey": PARTITION, "RowKey": "merged", "count": 3})
    return operations


def _existing(recorded: Recorded) -> list[tuple[Any, ...]]:
    return [(TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "new"}),
            (TransactionOperation.CREATE, {"PartitionKey": PARTITION, "RowKey": "kept"})]


def _missing(recorded: Recorded) -> list[tuple[Any, ...]]:
    return [*_mixed(recorded)[1:4],
            (TransactionOperation.DELETE, {"PartitionKey": PARTITION, "RowKey": "absent"})]


@pytest.mark.parametrize(("operations", "expected"), [
    (_stale, (3, 412, "Precondition Failed", "UpdateConditionNotSatisfied",
              "3:The update condition specified in the request was not satisfied.")),
    (_existing, (1, 409, "Conflict", "EntityAlreadyExists",
                 "1:The specified entity already exists.")),
    (_missing, (3, 404, "Not Found", "ResourceNotFound",
                "3:The specified resource does not exist.")),
], ids=["stale-etag", "create-existing", "delete-missing"])
def test_failed_changeset_raises_the_sdks_error_for_the_failing_operation(
        sdk: Recorded, ours: Recorded,
        operations: Callable[[Recorded], list[tuple[Any, ...]]],
        expected: tuple[int, int, str, str, str]) -> None:
    index, status, reason, code, message = expected
    failure = ("TableTransactionError", index, status, reason, code,
               f"{message}\nErrorCode:{code}", "RestHttpClientTransportResponse")
    with pytest.raises(TableTransactionError) as sdk_error:
        sdk.table.submit_transaction(operations(sdk))
    attempted = operations(ours)
    before = ours.rows()
    with pytest.raises(TableTransactionError) as our_error:
        submit(ours.table, attempted)
    assert (_failure(our_error.value), _failure(sdk_error.value), ours.rows()) == (
        failure, failure, before)


def test_a_transaction_of_100_operations_is_committed(ours: Recorded) -> None:
    rows = [{"PartitionKey": PARTITION, "RowKey": f"row{number:03d}",
             "findings_doc_0": bytes([number]) * 3000, "scanned": AT}
            for number in range(100)]
    answer = submit(ours.table, [(TransactionOperation.UPSERT, row) for row in rows])
    stored = ours.rows()
    assert (len(answer), len(ours.bodies), answer[99], stored["row099"]["findings_doc_0"],
            sum(1 for row_key in stored if row_key.startswith("row"))) == (
        100, 1, {"etag": ours.etag("row099")}, bytes([99]) * 3000, 100)


def _seen(error: HttpResponseError) -> tuple[Any, ...]:
    return (type(error).__name__, error.status_code, getattr(error, "error_code", None),
            error.message.split("\n")[0])


def test_missing_table_fails_as_with_the_sdk(azurite: Azurite) -> None:
    table = TableClient.from_connection_string(azurite.connection_string,
                                               "t" + uuid.uuid4().hex[:12])
    operation = [(TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "a"})]
    with pytest.raises(HttpResponseError) as sdk_error:
        table.submit_transaction(operation)
    with pytest.raises(HttpResponseError) as our_error:
        submit(table, operation)
    assert _seen(our_error.value) == _seen(sdk_error.value) == (
        "TableTransactionError", 404, "TableNotFound", "0:The table specified does not exist.")


def test_refused_request_raises_what_the_sdk_raises(ours: Recorded, azurite: Azurite) -> None:
    wrong_key = base64.b64encode(b"not the account key").decode()
    table = TableClient.from_connection_string(
        re.sub(r"AccountKey=[^;]+", f"AccountKey={wrong_key}", azurite.connection_string),
        ours.table.table_name)
    operation = [(TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "a"})]
    with pytest.raises(HttpResponseError) as sdk_error:
        table.submit_transaction(operation)
    with pytest.raises(HttpResponseError) as our_error:
        submit(table, operation)
    assert (_seen(our_error.value), set(ours.rows())) == (_seen(sdk_error.value), {
        "kept", "merged", "replaced", "deleted", "guarded"}) == (
        ("HttpResponseError", 403, TableErrorCode.AUTHORIZATION_FAILURE,
         "Server failed to authenticate the request. Make sure the value of the Authorization "
         "header is formed correctly including the signature."),
        {"kept", "merged", "replaced", "deleted", "guarded"})


def _sent_through_the_sdk(recorded: Recorded,
                          monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[Any, ...]]]:
    sent: list[list[tuple[Any, ...]]] = []
    submit_transaction = recorded.table.submit_transaction

    def counted(operations: list[tuple[Any, ...]], **kwargs: Any) -> Any:
        sent.append(operations)
        return submit_transaction(operations, **kwargs)

    monkeypatch.setattr(recorded.table, "submit_transaction", counted)
    return sent


def test_operation_with_other_keywords_goes_through_the_sdk(
        ours: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _sent_through_the_sdk(ours, monkeypatch)
    operations = [(TransactionOperation.UPSERT, {"PartitionKey": PARTITION, "RowKey": "kept",
                                                 "count": 5}, {"timeout": 30})]
    answer = submit(ours.table, operations)
    assert (sent, answer, ours.rows()["kept"]["count"]) == (
        [operations], [{"etag": ours.etag("kept")}], 5)


@pytest.mark.parametrize(("operations", "error"), [
    ([(TransactionOperation.UPSERT, {"PartitionKey": "a", "RowKey": "1"}),
      (TransactionOperation.UPSERT, {"PartitionKey": "b", "RowKey": "1"})],
     ValueError("Partition Keys in the batch must all be the same.")),
    ([(TransactionOperation.UPSERT, {"PartitionKey": "a", "RowKey": "1", "list": [1]})],
     TypeError("The value of 'operations' must be an iterator of Tuples. Please check "
               "documentation for correct Tuple format.")),
    ([("merge", {"PartitionKey": "a", "RowKey": "1"})],
     ValueError("Unrecognized operation: merge")),
], ids=["two-partitions", "unsupported-type", "unknown-operation"])
def test_malformed_operations_raise_the_sdks_error(
        ours: Recorded, monkeypatch: pytest.MonkeyPatch, operations: list[tuple[Any, ...]],
        error: Exception) -> None:
    sent = _sent_through_the_sdk(ours, monkeypatch)
    with pytest.raises(type(error)) as raised:
        submit(ours.table, operations)
    assert (str(raised.value), sent, ours.bodies) == (str(error), [operations], [])


def test_store_batches_go_through_this_module(azurite: Azurite,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``submit_batches`` (scan history, pulls) submits here, 100 operations at most."""
    called: list[int] = []
    real_submit = transactions.submit

    def counted(table: TableClient, operations: Any) -> Any:
        called.append(len(operations))
        return real_submit(table, operations)

    monkeypatch.setattr(transactions, "submit", counted)
    table = TableClient.from_connection_string(azurite.connection_string,
                                               "t" + uuid.uuid4().hex[:12])
    table.create_table()
    try:
        written = submit_batches(table, ((TransactionOperation.UPSERT,
                                          {"PartitionKey": f"p{number % 2}",
                                           "RowKey": f"{number:03d}"})
                                         for number in range(250)), "writing rows")
        stored = sum(1 for _ in table.list_entities())
    finally:
        table.delete_table()
    assert (written, called, stored) == (250, [100, 25, 100, 25], 250)


def test_answer_parts_keep_their_bodies_and_take_bare_line_feeds() -> None:
    # Invented edge case: LF line ends, a quoted boundary, a created entity's body (the SDK
    # asks for none of Prefer: return-no-content) holding what looks like a status line.
    answer = (b"--batchresponse_1\n"
              b"Content-Type: multipart/mixed; boundary=changesetresponse_2\n\n"
              b"--changesetresponse_2\nContent-Type: application/http\n"
              b"Content-Transfer-Encoding: binary\n\n"
              b"HTTP/1.1 201 Created\nETag: W/\"datetime'2025-03-01T00%3A00%3A00Z'\"\n"
              b"Content-Type: application/json\n\n"
              b'{"text": "a\nHTTP/1.1 500 Oops\n\n"}\n'
              b"--changesetresponse_2\nContent-Type: application/http\n\n"
              b"HTTP/1.1 204 No Content\n\n\n"
              b"--changesetresponse_2--\n--batchresponse_1--\n")
    assert transactions._read_parts(answer, 'multipart/mixed; boundary="batchresponse_1"') == [
        transactions._PartResponse(
            status=201, reason="Created",
            headers=(("ETag", "W/\"datetime'2025-03-01T00%3A00%3A00Z'\""),
                     ("Content-Type", "application/json")),
            body=b'{"text": "a\nHTTP/1.1 500 Oops\n\n"}'),
        transactions._PartResponse(status=204, reason="No Content", headers=(), body=b""),
    ]
