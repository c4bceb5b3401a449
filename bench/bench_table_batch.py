"""Client CPU of a Table transaction: the SDK's ``submit_transaction`` against
``scanning.store.transactions.submit`` (the same request without the email package).

    .venv/bin/python bench/bench_table_batch.py [--transactions 40]

Starts its own Azurite (in memory, free loopback ports) and sends ``--transactions``
transactions of 100 entities each way, alternating which goes first, for two shapes:

- image row merge: what ``ImageTable.merge_rows`` sends for a rescan that rewrites an
  assessment: a MERGE conditional on the row's ETag (the ETag each transaction answers is the
  next one's condition) of ~9.5 KB of Binary columns (match keys, a findings document and its
  keys, the inventory copy), counts, strings and a DateTime;
- scan history record: what ``ScanTable.record_finished`` sends: an upsert of strings, two
  DateTimes and a float.

It reports this process's CPU time (``time.process_time``: every thread, so the SDK's
per-answer thread pool counts) per entity and per transaction, and the wall time per
transaction, then checks that both ways stored the same rows.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.core import MatchConditions
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableServiceClient,
    TransactionOperation,
    UpdateMode,
)

from scanning.local.services import AzuritePorts, start_azurite
from scanning.store import transactions

ROWS = 100  # one full transaction
MOMENT = datetime(2025, 3, 3, 4, 5, 6, 789_012, tzinfo=UTC)
Submit = Callable[[TableClient, list[tuple[Any, ...]]], list[Any]]
PATHS: dict[str, Submit] = {
    "SDK submit_transaction": lambda table, operations: table.submit_transaction(operations),
    "transactions.submit": transactions.submit,
}


def image_changes(number: int, round_number: int) -> dict[str, Any]:
    noise = random.Random(number * 1000 + round_number)
    return {
        "index_version": f"v{round_number}", "assessed_at": MOMENT + timedelta(days=round_number),
        "last_scan_id": f"rescan-{round_number}-{number:08d}", "status": "unhealthy",
        "current_generation": f"{noise.getrandbits(64):016x}",
        "findings_format": 2, "findings_total": noise.randrange(200),
        "findings_fingerprint": f"{noise.getrandbits(128):032x}", "findings_doc_n": 1,
        "findings_keys_n": 1, "findings_keys_external": False,
        "match_keys": noise.randbytes(1500), "findings_doc_0": noise.randbytes(3000),
        "findings_keys_0": noise.randbytes(1000), "inventory_n": 1,
        "inventory_0": noise.randbytes(4000), "critical": 1, "high": 4, "medium": 9,
        "size_bytes": EntityProperty(3_456_789_012, EdmType.INT64),
    }


def history_row(number: int, round_number: int) -> dict[str, Any]:
    started = MOMENT + timedelta(days=round_number)
    return {
        "PartitionKey": "79748964957995", "RowKey": f"7974896495799510999-{number:032x}",
        "scan_id": f"20250303T040506789012-{number:032x}", "registry": "myacr.azurecr.io",
        "repository": f"team/app-{number % 40}", "digest": f"sha256:{number:064x}",
        "trigger": "rescan", "started": started, "outcome": "healthy", "error": "",
        "finished": started + timedelta(seconds=2.5), "duration_seconds": 2.5,
    }


class ImageMerges:
    """Conditional merges of the same 100 image rows, each on the ETag the last one left."""

    name = "image row merge"

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.rows = [{"PartitionKey": "myacr.azurecr.io|07",
                      "RowKey": f"sha256:{number:064x}|team%2Fapp"} for number in range(ROWS)]
        answer = table.submit_transaction([(TransactionOperation.UPSERT, row)
                                           for row in self.rows])
        self.etags = [metadata["etag"] for metadata in answer]

    def operations(self, round_number: int) -> list[tuple[Any, ...]]:
        return [(TransactionOperation.UPDATE,
                 {**row, **image_changes(number, round_number)},
                 {"mode": UpdateMode.MERGE, "etag": etag,
                  "match_condition": MatchConditions.IfNotModified})
                for number, (row, etag) in enumerate(zip(self.rows, self.etags, strict=True))]

    def answered(self, answer: list[Any]) -> None:
        self.etags = [metadata["etag"] for metadata in answer]


class HistoryRecords:
    """Upserts of 100 scan history rows."""

    name = "scan history record"

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def operations(self, round_number: int) -> list[tuple[Any, ...]]:
        return [(TransactionOperation.UPSERT, history_row(number, round_number))
                for number in range(ROWS)]

    def answered(self, answer: list[Any]) -> None:
        pass


def stored(table: TableClient) -> list[dict[str, Any]]:
    return sorted((dict(entity) for entity in table.list_entities()),
                  key=lambda entity: entity["RowKey"])


def measure(service: TableServiceClient, shape: type[ImageMerges] | type[HistoryRecords],
            transactions_count: int) -> tuple[str, dict[str, tuple[float, float]], bool]:
    """(shape name, {path: (CPU seconds, wall seconds)}, both paths stored the same rows)."""
    workloads = {path: shape(service.create_table(f"bench{index}{shape.__name__}"))
                 for index, path in enumerate(PATHS)}
    totals = dict.fromkeys(PATHS, (0.0, 0.0))
    for round_number in range(-2, transactions_count):  # two rounds to warm up
        order = list(PATHS) if round_number % 2 == 0 else list(reversed(PATHS))
        for path in order:
            workload = workloads[path]
            operations = workload.operations(round_number)
            cpu, wall = time.process_time(), time.perf_counter()
            answer = PATHS[path](workload.table, operations)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            workload.answered(answer)
            if round_number >= 0:
                totals[path] = (totals[path][0] + cpu, totals[path][1] + wall)
    tables = [workload.table for workload in workloads.values()]
    return shape.name, totals, stored(tables[0]) == stored(tables[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=40,
                        help="timed transactions of 100 entities per shape and way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acr-scan-azurite-") as folder:
        azurite = start_azurite(Path(folder), AzuritePorts.free(), in_memory=True)
        try:
            service = TableServiceClient.from_connection_string(azurite.connection_string)
            results = [measure(service, shape, args.transactions)
                       for shape in (ImageMerges, HistoryRecords)]
        finally:
            azurite.stop()
    entities = args.transactions * ROWS
    print(f"{args.transactions} transactions of {ROWS} entities per shape and way "
          "(client CPU of this process; wall includes Azurite)")
    print(f"{'shape':<22}{'way':<25}{'CPU ms/entity':>14}{'CPU ms/txn':>12}{'wall ms/txn':>13}")
    for name, totals, same in results:
        for path, (cpu, wall) in totals.items():
            print(f"{name:<22}{path:<25}{cpu * 1000 / entities:>14.3f}"
                  f"{cpu * 1000 / args.transactions:>12.1f}"
                  f"{wall * 1000 / args.transactions:>13.1f}")
        print(f"{'':<22}both ways stored the same rows: {'yes' if same else 'NO'}")
    return 0 if all(same for _name, _totals, same in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
