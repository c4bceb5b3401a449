"""How Azurite's blob reads scale with the number of blobs (why a 10,000-image rescan costs
Azurite more per image than a 1,000-image one).

    .venv/bin/python bench/bench_azurite_blobs.py [--blobs 10000]

Uploads 500 blobs of 2 KB, times 300 GETs (Azurite's own CPU per GET), uploads up to N and
times again. Azurite's blob metadata store (LokiJS) narrows a lookup by its first indexed
field, the account, and scans the rest: a GET costs O(blobs in the account). Azure Blob Storage
reads a blob by name.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from azure.storage.blob import BlobServiceClient
from bench_rescan import azurite_cpu

from scanning.local.services import AzuritePorts, start_azurite

READS = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acr-scan-azurite-") as folder:
        azurite = start_azurite(Path(folder), AzuritePorts.free(), in_memory=True)
        try:
            container = BlobServiceClient.from_connection_string(
                azurite.connection_string).get_container_client("blobs")
            container.create_container()
            stored = 0
            for target in (500, max(500, args.blobs)):
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(lambda number: container.upload_blob(
                        f"blob-{number}", os.urandom(2000)), range(stored, target)))
                stored = target
                before = azurite_cpu(azurite.process.pid)
                for number in range(READS):
                    container.get_blob_client(f"blob-{number}").download_blob().readall()
                spent = azurite_cpu(azurite.process.pid) - before
                print(f"{stored} blobs: Azurite {spent / READS * 1000:.2f} CPU ms per GET")
        finally:
            azurite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
