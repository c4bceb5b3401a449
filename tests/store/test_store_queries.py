"""``scanning.store.queries.query_entities`` against Azurite, entity for entity equal to the
SDK's ``TableClient.query_entities`` (values, types, ETags, timestamps, paging), and against a
scripted server for answers it cannot read."""

from __future__ import annotations

import datetime
import http.server
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from azure.core.exceptions import DecodeError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient, TableServiceClient
from azure.data.tables._deserialize import _convert_to_entity

from scanning.local.services import Azurite
from scanning.store.queries import _entity, query_entities


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_table("q" + uuid.uuid4().hex[:12])
    moment = datetime.datetime(2026, 12, 3, 14, 5, 6, 789012, tzinfo=datetime.UTC)
    for partition in ("p1", "p2"):
        for number in range(5):
            client.create_entity({
                "PartitionKey": partition, "RowKey": f"r{number}", "text": f"t{number} é",
                "small": number, "large": EntityProperty(2**40 + number, EdmType.INT64),
                "ratio": number / 4, "flag": number % 2 == 0,
                "data": bytes(range(number * 50)) or b"\x00",
                "when": moment + datetime.timedelta(seconds=number),
                "guid": uuid.UUID(int=number + 1),
                **({"sometimes": "here"} if number == 3 else {})})
    yield client
    service.delete_table(client.table_name)


def _same(ours: list[Any], sdk: list[Any]) -> None:
    assert [(dict(entity), entity.metadata) for entity in ours] == [
        (dict(entity), entity.metadata) for entity in sdk]
    assert [[(name, type(value)) for name, value in entity.items()] for entity in ours] == [
        [(name, type(value)) for name, value in entity.items()] for entity in sdk]


@pytest.mark.parametrize("page", [None, 1, 3, 1000])
def test_every_entity_as_the_sdk_reads_it_over_any_page_size(table: TableClient,
                                                             page: int | None) -> None:
    ours = list(query_entities(table, "PartitionKey ne ''", results_per_page=page))
    sdk = list(table.query_entities("PartitionKey ne ''", results_per_page=page))
    assert len(ours) == 10
    _same(ours, sdk)


def test_filter_parameters_and_select_as_the_sdk(table: TableClient) -> None:
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey le @high"
    parameters = {"pk": "p2", "low": "r1", "high": "r3"}
    select = ("RowKey", "data", "when", "sometimes", "large")
    ours = list(query_entities(table, query, parameters=parameters, select=select,
                               results_per_page=2))
    sdk = list(table.query_entities(query, parameters=parameters, select=list(select),
                                    results_per_page=2))
    assert [entity["RowKey"] for entity in ours] == ["r1", "r2", "r3"]
    assert ours[2]["large"] == EntityProperty(2**40 + 3, EdmType.INT64)
    assert ours[0]["data"] == bytes(range(50))
    _same(ours, sdk)


def test_pages_are_read_only_as_far_as_they_are_used(table: TableClient) -> None:
    entities = query_entities(table, "PartitionKey eq 'p1'", results_per_page=2)
    first = next(entities)
    entities.close()
    assert first["RowKey"] == "r0"


def test_a_missing_table_raises_what_the_sdk_raises(azurite: Azurite) -> None:
    missing = TableClient.from_connection_string(azurite.connection_string, "nosuchtable")
    with pytest.raises(ResourceNotFoundError) as ours:
        list(query_entities(missing, "PartitionKey ne ''"))
    with pytest.raises(ResourceNotFoundError) as sdk:
        list(missing.query_entities("PartitionKey ne ''"))
    assert (type(ours.value), ours.value.status_code, ours.value.error_code) == (
        type(sdk.value), 404, sdk.value.error_code)


class _Garbled(http.server.BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbled() -> Iterator[TableClient]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbled)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{server.server_address[1]}/acct", "images")
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html>",
     "unexpected character, expected a JSON value: line 1 column 1 (char 0)"),
    (b'{"odata.metadata": "x"}', "'value'"),
    (b'{"value": {"PartitionKey": "p"}}', "value is dict"),
    (b'{"value": [["PartitionKey", "p"]]}', "an entity is list"),
])
def test_an_unreadable_answer_is_a_decode_error(garbled: TableClient, body: bytes,
                                               reason: str) -> None:
    _Garbled.body = body
    with pytest.raises(DecodeError) as raised:
        list(query_entities(garbled, "PartitionKey ne ''"))
    assert raised.value.message == f"unreadable Query Entities answer from images: {reason}"


@pytest.mark.parametrize("entry", [
    {"PartitionKey": "p", "RowKey": "r", "Timestamp": "2026-12-03T14:05:06.1234567Z",
     "when@odata.type": "Edm.DateTime", "when": "2026-12-03T14:05:06Z",
     "frac@odata.type": "Edm.DateTime", "frac": "2026-12-03T14:05:06.5Z"},
    {"PartitionKey": "p", "RowKey": "r", "odata.etag": "W/\"x\"", "odata.metadata": "m",
     "large": 2**31, "negative": -(2**31) - 1, "edge": 2**31 - 1, "flag": True,
     "ratio@odata.type": "Edm.Double", "ratio": "Infinity", "plain": 1.5,
     "odd@odata.type": "Edm.Unknown", "odd": "v", "text@odata.type": "Edm.String",
     "text": "t", "n@odata.type": "Edm.Int32", "n": 7, "g@odata.type": "Edm.Guid",
     "g": "c9da6455-213d-42c9-9a79-3e9149a57833", "b@odata.type": "Edm.Binary",
     "b": "AAEC", "l@odata.type": "Edm.Int64", "l": "255", "nothing": None},
    {"RowKey": "only"},
])
def test_conversion_equals_the_sdks(entry: dict[str, Any]) -> None:
    ours, sdk = _entity(dict(entry)), _convert_to_entity(dict(entry))
    _same([ours], [sdk])
    assert [getattr(value, "tables_service_value", None) for value in ours.values()] == [
        getattr(value, "tables_service_value", None) for value in sdk.values()]


@pytest.mark.parametrize("value", ["2026-12-03T14:05:06", "2026-13-03T14:05:06Z", "x"])
def test_a_datetime_the_sdk_refuses_is_refused(value: str) -> None:
    entry = {"RowKey": "r", "when@odata.type": "Edm.DateTime", "when": value}
    with pytest.raises(ValueError):
        _convert_to_entity(dict(entry))
    with pytest.raises(ValueError):
        _entity(dict(entry))
