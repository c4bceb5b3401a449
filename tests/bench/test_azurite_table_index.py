"""``bench/azurite_table_index.cjs``: Azurite with it preloaded answers every table query with the
same entities, in the same pages, as Azurite without it (the session's ``azurite``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableEntity, TableServiceClient

from scanning.local.services import Azurite
from tests.bench.modules import BENCH, load_bench, preloaded_azurite

bench_storage = load_bench("bench_storage")

# Partition keys with a quote, numeric-looking text (Azurite's index compares "1" and "1.0" as
# numbers) and non-ASCII text, beside ordinary ones.
PARTITIONS = ("p0", "p1", "p2", "p3", "p4", "a'b", "1", "1.0", "10", "9", "é")
ROWS = 40  # per partition


def _entities() -> Iterator[dict[str, Any]]:
    for number, partition in enumerate(PARTITIONS):
        # Rows inserted out of order, so the answer's order is the store's, not the insert's.
        for row in sorted(range(ROWS), key=lambda n: (n * 7 + number) % ROWS):
            yield {"PartitionKey": partition, "RowKey": f"r{row:03d}", "n": row,
                   "even": row % 2 == 0}


def _fill(connection_string: str, name: str) -> TableClient:
    table = TableServiceClient.from_connection_string(connection_string).create_table(name)
    for partition in PARTITIONS:
        table.submit_transaction([("upsert", entity) for entity in _entities()
                                  if entity["PartitionKey"] == partition])
    return table


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = preloaded_azurite(tmp_path_factory.mktemp("azurite-index"), table_index=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tables(azurite: Azurite, indexed: Azurite) -> tuple[TableClient, TableClient]:
    return _fill(azurite.connection_string, "plainindex"), _fill(indexed.connection_string,
                                                                  "plainindex")


def _pages(table: TableClient, query_filter: str | None,
           page_size: int | None) -> list[list[tuple[str, str, int]]]:
    if query_filter is None:
        paged = table.list_entities(results_per_page=page_size)
    else:
        paged = table.query_entities(query_filter, results_per_page=page_size)
    pages = []
    for page in paged.by_page():
        pages.append([(entity["PartitionKey"], entity["RowKey"], entity["n"])
                      for entity in page])
        # A continuation that does not move on would page forever.
        assert len(pages) <= len(PARTITIONS) * ROWS + 1, "the pages do not end"
    return pages


FILTERS = {
    # filter: rows it selects
    "PartitionKey eq 'p3'": ROWS,
    "PartitionKey eq 'p3' and RowKey ge 'r010' and RowKey le 'r040'": 30,
    "RowKey ge 'r010' and (n lt 20 and PartitionKey eq 'p3')": 10,
    "PartitionKey eq 'p3' or PartitionKey eq 'p4'": 2 * ROWS,
    "(PartitionKey eq 'p3' and n ge 35) or RowKey eq 'r001'": 5 + len(PARTITIONS),
    "not (PartitionKey eq 'p3')": (len(PARTITIONS) - 1) * ROWS,
    "PartitionKey eq 'a''b' and even eq true": ROWS // 2,
    "PartitionKey eq '1'": ROWS,
    "PartitionKey eq '1.0'": ROWS,
    "PartitionKey eq '10' and RowKey gt 'r038'": 1,
    "PartitionKey eq 'é'": ROWS,
    "PartitionKey eq 'nowhere'": 0,
    "PartitionKey ge 'p1' and PartitionKey lt 'p4'": 3 * ROWS,
    "n lt 3": 3 * len(PARTITIONS),
}


@pytest.mark.parametrize("page_size", [None, 1, 7, 1000])
@pytest.mark.parametrize("query_filter", [*FILTERS, None])
def test_the_same_pages_with_and_without_the_index(
        tables: tuple[TableClient, TableClient], query_filter: str | None,
        page_size: int | None) -> None:
    plain, indexed = tables
    expected = _pages(plain, query_filter, page_size)
    rows = [row for page in expected for row in page]
    assert len(rows) == (FILTERS[query_filter] if query_filter is not None
                         else len(PARTITIONS) * ROWS)
    assert rows == sorted(rows)
    assert _pages(indexed, query_filter, page_size) == expected


def test_a_bad_filter_is_refused_the_same_way(tables: tuple[TableClient, TableClient]) -> None:
    codes = []
    for table in tables:
        with pytest.raises(HttpResponseError) as raised:
            list(table.query_entities("PartitionKey eq"))
        codes.append((raised.value.status_code, raised.value.error_code))
    assert codes[0] == codes[1]
    assert codes[0][0] == 400


def test_the_index_is_loaded(indexed: Azurite, tables: tuple[TableClient, TableClient]) -> None:
    log = (indexed.data_dir / "azurite.log").read_text()
    assert "acr-scan bench: Azurite table queries read the pinned partition" in log


def test_node_environment_keeps_the_callers_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_OPTIONS", "--trace-warnings")
    plain = bench_storage.node_environment()
    assert plain["NODE_OPTIONS"] == "--trace-warnings --max-old-space-size=16384"
    indexed = bench_storage.node_environment(table_index=True)
    assert indexed["NODE_OPTIONS"] == (f"--trace-warnings --max-old-space-size=16384 "
                                       f'--require "{BENCH / "azurite_table_index.cjs"}"')
    monkeypatch.delenv("NODE_OPTIONS")
    assert bench_storage.node_environment()["NODE_OPTIONS"] == "--max-old-space-size=16384"


def _outcome(action: Any) -> Any:
    """What an operation returned (its entity's keys and values), or its error's status."""
    try:
        result = action()
    except HttpResponseError as error:
        return ("error", error.status_code, type(error).__name__)
    if isinstance(result, TableEntity):
        return sorted(result.items())
    return "done"


def _point_operations(table: TableClient) -> list[Any]:
    """Reads, writes and a failing transaction on big partitions, as the rescan's history and
    image rows see them; every outcome, then the whole table."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    outcomes: list[Any] = []
    big = [{"PartitionKey": f"part{number % 2}", "RowKey": f"row{number:04d}", "n": number}
           for number in range(600)]
    # One RowKey in every partition: the RowKey index is then the wider one.
    shared = [{"PartitionKey": f"shared{number:03d}", "RowKey": "same", "n": number}
              for number in range(30)]
    for entity in big + shared:
        outcomes.append(_outcome(lambda entity=entity: table.upsert_entity(entity)))
    outcomes += [
        _outcome(lambda: table.get_entity("part0", "row0100")),
        _outcome(lambda: table.get_entity("part1", "row0100")),  # on the other partition
        _outcome(lambda: table.get_entity("shared007", "same")),
        _outcome(lambda: table.get_entity("shared999", "same")),
        _outcome(lambda: table.create_entity({"PartitionKey": "part0", "RowKey": "row0002"})),
        _outcome(lambda: table.create_entity({"PartitionKey": "part0", "RowKey": "row9999"})),
        _outcome(lambda: table.upsert_entity({"PartitionKey": "part1", "RowKey": "row0003",
                                              "extra": "merged"}, mode=UpdateMode.MERGE)),
        _outcome(lambda: table.upsert_entity({"PartitionKey": "shared003", "RowKey": "same",
                                              "extra": "replaced"}, mode=UpdateMode.REPLACE)),
        _outcome(lambda: table.update_entity(
            {"PartitionKey": "part0", "RowKey": "row0004", "n": -1}, mode=UpdateMode.MERGE,
            etag='W/"datetime\'2020-01-01T00%3A00%3A00.0000000Z\'"',
            match_condition=MatchConditions.IfNotModified)),
        _outcome(lambda: table.update_entity({"PartitionKey": "part0", "RowKey": "row8888",
                                              "n": -1}, mode=UpdateMode.MERGE)),
        _outcome(lambda: table.delete_entity("part1", "row0005")),
        _outcome(lambda: table.delete_entity("shared004", "same")),
        _outcome(lambda: table.get_entity("part1", "row0005")),
        # A transaction whose last operation fails: nothing of it may stay.
        _outcome(lambda: table.submit_transaction([
            ("upsert", {"PartitionKey": "part0", "RowKey": "row0006", "n": 66}),
            ("create", {"PartitionKey": "part0", "RowKey": "row0100"})])),
        # One that adds a new row, then fails: the new row is removed again.
        _outcome(lambda: table.submit_transaction([
            ("create", {"PartitionKey": "part1", "RowKey": "row7777", "n": 7777}),
            ("create", {"PartitionKey": "part1", "RowKey": "row0101"})])),
        _outcome(lambda: table.get_entity("part1", "row7777")),
        _outcome(lambda: table.get_entity("part0", "row0006")),
        # A row removed and added again under the same keys.
        _outcome(lambda: table.delete_entity("part1", "row0007")),
        _outcome(lambda: table.create_entity({"PartitionKey": "part1", "RowKey": "row0007",
                                              "n": 77})),
        _outcome(lambda: table.get_entity("part1", "row0007")),
    ]
    outcomes.append(sorted((entity["PartitionKey"], entity["RowKey"], entity.get("n"),
                            entity.get("extra")) for entity in table.list_entities()))
    return outcomes


def test_point_operations_end_the_same_way(azurite: Azurite, indexed: Azurite) -> None:
    plain, keyed = (TableServiceClient.from_connection_string(
        server.connection_string).create_table("pointindex") for server in (azurite, indexed))
    expected = _point_operations(plain)
    assert expected[630:650] == [
        [("PartitionKey", "part0"), ("RowKey", "row0100"), ("n", 100)],
        ("error", 404, "ResourceNotFoundError"),
        [("PartitionKey", "shared007"), ("RowKey", "same"), ("n", 7)],
        ("error", 404, "ResourceNotFoundError"),
        ("error", 409, "ResourceExistsError"),
        "done",
        "done",
        "done",
        ("error", 412, "ResourceModifiedError"),
        ("error", 404, "ResourceNotFoundError"),
        "done",
        "done",
        ("error", 404, "ResourceNotFoundError"),
        ("error", 409, "TableTransactionError"),
        ("error", 409, "TableTransactionError"),
        ("error", 404, "ResourceNotFoundError"),
        [("PartitionKey", "part0"), ("RowKey", "row0006"), ("n", 6)],
        "done",
        "done",
        [("PartitionKey", "part1"), ("RowKey", "row0007"), ("n", 77)],
    ]
    rows = expected[-1]
    assert len(rows) == 600 + 30 + 1 - 2
    assert ("part0", "row0006", 6, None) in rows and ("part1", "row0007", 77, None) in rows
    assert ("part1", "row0003", 3, "merged") in rows
    assert ("shared003", "same", None, "replaced") in rows
    assert _point_operations(keyed) == expected


def _table_made_again(service: TableServiceClient) -> list[Any]:
    """A table deleted and created again under its name: Azurite replaces its collection, whose
    rows must not come back. Point reads, a partition query and the listing."""
    outcomes: list[Any] = []
    for round_ in range(2):
        table = service.create_table("againindex")
        for number in range(5 + round_):
            table.upsert_entity({"PartitionKey": "p", "RowKey": f"r{number}", "n": round_})
        outcomes += [_outcome(lambda table=table: table.get_entity("p", "r5")),
                     _outcome(lambda table=table: table.get_entity("p", "r0")),
                     [(entity["RowKey"], entity["n"])
                      for entity in table.query_entities("PartitionKey eq 'p'")],
                     [(entity["RowKey"], entity["n"]) for entity in table.list_entities()]]
        service.delete_table("againindex")
    return outcomes


def test_a_table_made_again_starts_empty(azurite: Azurite, indexed: Azurite) -> None:
    plain, keyed = (_table_made_again(TableServiceClient.from_connection_string(
        server.connection_string)) for server in (azurite, indexed))
    first = [(f"r{number}", 0) for number in range(5)]
    again = [(f"r{number}", 1) for number in range(6)]
    assert plain == [("error", 404, "ResourceNotFoundError"),
                     [("PartitionKey", "p"), ("RowKey", "r0"), ("n", 0)], first, first,
                     [("PartitionKey", "p"), ("RowKey", "r5"), ("n", 1)],
                     [("PartitionKey", "p"), ("RowKey", "r0"), ("n", 1)], again, again]
    assert keyed == plain


def _listing_between_writes(table: TableClient) -> list[Any]:
    """A paged listing of the whole table (7 rows a page) with writes between its pages: rows
    added behind and ahead of the continuation, removed, merged, replaced, a failed
    transaction's rollback; then reads of what was merged, a partition's rows and the whole
    table again. Every page and outcome, in order."""
    from azure.data.tables import UpdateMode

    for partition in range(5):
        table.submit_transaction([
            ("upsert", {"PartitionKey": f"q{partition}", "RowKey": f"r{number:04d}",
                        "n": number}) for number in range(partition, 200, 5)])
    writes = {
        0: [lambda: table.create_entity({"PartitionKey": "q0", "RowKey": "r0000a", "n": -1}),
            lambda: table.create_entity({"PartitionKey": "q4", "RowKey": "r9999", "n": 9999})],
        1: [lambda: table.delete_entity("q3", "r0008")],
        2: [lambda: table.upsert_entity({"PartitionKey": "q2", "RowKey": "r0012",
                                         "extra": "merged ahead"}, mode=UpdateMode.MERGE)],
        3: [lambda: table.upsert_entity({"PartitionKey": "q0", "RowKey": "r0005",
                                         "extra": "merged behind"}, mode=UpdateMode.MERGE)],
        4: [lambda: table.upsert_entity({"PartitionKey": "q3", "RowKey": "r0013",
                                         "extra": "replaced"}, mode=UpdateMode.REPLACE)],
        5: [lambda: table.submit_transaction([
            ("upsert", {"PartitionKey": "q4", "RowKey": "r0004", "n": 44}),
            ("create", {"PartitionKey": "q4", "RowKey": "r0009"})])],
        6: [lambda: table.delete_entity("q0", "r0000"),
            lambda: table.create_entity({"PartitionKey": "q0", "RowKey": "r0001b", "n": -2})],
        # The last row added, removed, and a row added ahead: every other row keeps its place.
        8: [lambda: table.delete_entity("q0", "r0001b"),
            lambda: table.create_entity({"PartitionKey": "q3", "RowKey": "r0100a", "n": 100})],
    }
    outcomes: list[Any] = []
    for number, page in enumerate(table.list_entities(results_per_page=7).by_page()):
        outcomes.append([(entity["PartitionKey"], entity["RowKey"], entity.get("n"),
                          entity.get("extra")) for entity in page])
        outcomes += [_outcome(write) for write in writes.get(number, [])]
        assert number < 100, "the pages do not end"
    outcomes += [_outcome(lambda: table.get_entity("q2", "r0012")),
                 _outcome(lambda: table.get_entity("q0", "r0005")),
                 _outcome(lambda: table.get_entity("q3", "r0013"))]
    outcomes.append(sorted((entity["RowKey"], entity.get("n"), entity.get("extra"))
                           for entity in table.query_entities("PartitionKey eq 'q2'")))
    outcomes.append([(entity["PartitionKey"], entity["RowKey"], entity.get("n"))
                     for entity in table.query_entities("n ge 190 or n lt 0")])
    return outcomes


def test_a_listing_between_writes_pages_the_same_way(azurite: Azurite, indexed: Azurite) -> None:
    plain, keyed = (TableServiceClient.from_connection_string(
        server.connection_string).create_table("listingindex") for server in (azurite, indexed))
    expected = _listing_between_writes(plain)
    pages = [item for item in expected[:-5] if isinstance(item, list)]
    rows = [row[:2] for page in pages for row in page]
    assert rows == sorted(rows)
    # 201 rows: the rows added behind the continuation (q0/r0000a, q0/r0001b, the second
    # after a removal, so the table's length is back where it was) are not seen, nor the one
    # removed ahead; the two added ahead are; the ones removed behind were seen already.
    assert len(rows) == 200 - 1 + 2
    assert ("q0", "r0000a") not in rows and ("q0", "r0001b") not in rows
    assert ("q3", "r0008") not in rows
    assert ("q4", "r9999") in rows and ("q3", "r0100a") in rows and ("q0", "r0000") in rows
    assert ("q2", "r0012", 12, "merged ahead") in [row for page in pages for row in page]
    assert expected[-5][:2] == [("PartitionKey", "q2"), ("RowKey", "r0012")]
    assert ("extra", "merged behind") in expected[-4]
    assert ("extra", "replaced") in expected[-3] and ("n", 13) not in expected[-3]
    assert len(expected[-2]) == 40 and ("r0012", 12, "merged ahead") in expected[-2]
    assert expected[-1] == [
        ("q0", "r0000a", -1), ("q0", "r0190", 190), ("q0", "r0195", 195),
        ("q1", "r0191", 191), ("q1", "r0196", 196),
        ("q2", "r0192", 192), ("q2", "r0197", 197), ("q3", "r0193", 193), ("q3", "r0198", 198),
        ("q4", "r0194", 194), ("q4", "r0199", 199), ("q4", "r9999", 9999)]
    assert _listing_between_writes(keyed) == expected
