"""``bench/azurite_table_index.cjs``: Azurite with it preloaded answers every table query with the
same entities, in the same pages, as Azurite without it (the session's ``azurite``)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient

from scanning.local.services import Azurite, AzuritePorts, start_azurite

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_storage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_storage", BENCH / "bench_storage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_storage", module)
    spec.loader.exec_module(module)
    return module


bench_storage = _bench_storage()

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
    server = start_azurite(tmp_path_factory.mktemp("azurite-index"), AzuritePorts.free(),
                           in_memory=True,
                           env=bench_storage.node_environment(table_index=True))
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
