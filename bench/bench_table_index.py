"""What one key-range query costs Azurite as its table grows, with and without
``azurite_table_index.cjs`` (``bench_rescan.py --table-index``).

For each table size it starts Azurite in memory, fills one table with small entities spread over
partitions of ``--partition-rows`` rows (the rescan's images table: a partition per registry and
digest shard, ~62 rows each at 100,000 images in 100 registries), then reads ``--queries``
partitions by key range, as a rescan chunk reads its rows (``PartitionKey eq @pk and RowKey ge
@low and RowKey le @high``). It reports the wall milliseconds per query (client included) and
Azurite's CPU milliseconds per query (from /proc), which is what grows with the table when every
query scans it.

Then it adds ``--inserts`` rows to the same table the way a rescan records its history: one
transaction of 100 rows at a time, over 16 partitions, keys newest first (each new key sorts
before every earlier one). Azurite's CPU milliseconds per row added are what LokiJS's sorted key
indexes make grow with the table: each new row was spliced into both, near their front.

    .venv/bin/python bench/bench_table_index.py [--rows 10000,100000] [--queries 200]
        [--inserts 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from azure.data.tables import TableServiceClient
from bench_rescan import storage_cpu
from bench_storage import start_storage

BATCH = 100  # entities per transaction (the service's limit)


def partition(number: int) -> str:
    return f"registry{number // 16:04d}|{number % 16:x}"


def history_key(number: int) -> tuple[str, str]:
    """A history row's keys: 16 partitions (one per transaction of 100, in turn), RowKeys that
    fall as ``number`` grows."""
    return f"202612|{number // BATCH % 16:x}", f"{10 ** 12 - number:013d}"


def measure(rows: int, partition_rows: int, queries: int, inserts: int, *,
            table_index: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="acr-scan-table-index-") as folder:
        storage = start_storage(Path(folder), table_index=table_index)
        try:
            table = TableServiceClient.from_connection_string(
                storage.connection_string).create_table("bench")
            partitions = max(1, rows // partition_rows)
            started = time.perf_counter()
            for number in range(partitions):
                size = rows // partitions + (1 if number < rows % partitions else 0)
                entities = [{"PartitionKey": partition(number), "RowKey": f"sha256:{row:064x}",
                             "repository": "team/app", "n": row} for row in range(size)]
                for first in range(0, len(entities), BATCH):
                    table.submit_transaction([("upsert", entity)
                                              for entity in entities[first:first + BATCH]])
            filled = time.perf_counter() - started
            step = max(1, partitions // queries)
            chosen = [partition(number) for number in range(0, partitions, step)][:queries]
            cpu_before = storage_cpu(storage.pids)
            started = time.perf_counter()
            found = 0
            for key in chosen:
                found += sum(1 for _ in table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": key, "low": "sha256:", "high": "sha256;"},
                    results_per_page=1000))
            wall = (time.perf_counter() - started) / len(chosen) * 1000
            cpu = (storage_cpu(storage.pids) - cpu_before) / len(chosen) * 1000
            cpu_before = storage_cpu(storage.pids)
            for first in range(0, inserts, BATCH):
                operations = []
                for number in range(first, min(inserts, first + BATCH)):
                    partition_key, row_key = history_key(number)
                    operations.append(("upsert", {"PartitionKey": partition_key,
                                                  "RowKey": row_key, "n": number}))
                table.submit_transaction(operations)
            insert_cpu = (storage_cpu(storage.pids) - cpu_before) / max(1, inserts) * 1000
        finally:
            storage.stop()
    mode = "with the preload" if table_index else "plain Azurite   "
    return (f"{rows:>8,} rows, {mode}: {wall:6.1f} ms per query (Azurite {cpu:6.1f} CPU ms), "
            f"{found / len(chosen):.0f} rows each; {inserts} history rows added at Azurite "
            f"{insert_cpu:.3f} CPU ms each; filled in {filled:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000",
                        help="table sizes, comma-separated")
    parser.add_argument("--partition-rows", type=int, default=62)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--inserts", type=int, default=2000)
    args = parser.parse_args()
    for rows in (int(text) for text in args.rows.split(",") if text.strip()):
        for table_index in (False, True):
            print(measure(rows, args.partition_rows, args.queries, args.inserts,
                          table_index=table_index), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
