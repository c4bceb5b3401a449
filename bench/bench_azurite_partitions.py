"""How Azurite's table store scales with partition size (why bench_rescan misses at 10,000).

    .venv/bin/python bench/bench_azurite_partitions.py [--rows 8000]

Writes N small rows into one partition, then into 16, and times N merges in 100-row
transactions each way (Azurite's own CPU seconds and the wall time). Azurite indexes
``PartitionKey`` and then scans the partition for the ``RowKey`` on every point operation, so a
merge costs O(rows in its partition); Azure Table Storage looks entities up by key.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from azure.data.tables import TableServiceClient, TransactionOperation, UpdateMode
from bench_rescan import azurite_cpu

from scanning.local.services import AzuritePorts, start_azurite


def batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Runs of at most 100 rows of one partition."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        if batch and (len(batch) == 100 or batch[0]["PartitionKey"] != row["PartitionKey"]):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def measure(rows: int, partitions: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="acr-scan-azurite-") as folder:
        azurite = start_azurite(Path(folder), AzuritePorts.free(), in_memory=True)
        try:
            table = TableServiceClient.from_connection_string(
                azurite.connection_string).create_table("partitions")
            entities = sorted(({"PartitionKey": f"p{number % partitions:02d}",
                                "RowKey": f"{number:08d}", "value": 1}
                               for number in range(rows)),
                              key=lambda row: (row["PartitionKey"], row["RowKey"]))
            for batch in batches(entities):
                table.submit_transaction([(TransactionOperation.UPSERT, row) for row in batch])
            cpu_before = azurite_cpu(azurite.process.pid)
            started = time.perf_counter()
            for batch in batches(entities):
                table.submit_transaction([
                    (TransactionOperation.UPDATE, {**row, "value": 2}, {"mode": UpdateMode.MERGE})
                    for row in batch])
            return azurite_cpu(azurite.process.pid) - cpu_before, time.perf_counter() - started
        finally:
            azurite.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8000)
    args = parser.parse_args()
    for partitions in (1, 16):
        cpu, wall = measure(args.rows, partitions)
        print(f"{args.rows} merges, rows in {partitions} partition(s): Azurite {cpu:.2f} CPU s, "
              f"{wall:.2f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
