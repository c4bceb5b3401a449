"""Server time of each dashboard page with many stored images (issue 15: < 300 ms at 10,000).

Starts its own in-memory Azurite on free loopback ports, seeds ``--images`` image rows (100
repositories, statuses and finding counts varied) in 100-row transactions, signs in with a
key and times ``scanning.dashboard.pages.handle`` for each page: the server's share of a page
view, without the Functions host or the browser. Prints the median and the slowest of
``--runs`` renders per page; the overview twice: reading every row (its first view, and
after a minute or a rule change) and with the totals it keeps.

    .venv/bin/python bench/bench_dashboard.py --images 10000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import TransactionOperation

from scanning.dashboard import auth
from scanning.dashboard.pages import DashboardRequest, forget_totals, handle
from scanning.local.services import AzuritePorts, start_azurite
from scanning.model import AssessmentStatus, Severity
from scanning.store import Store
from scanning.store.entities import int64, submit_batches
from scanning.store.images import count_column, image_keys, new_image_row

REGISTRY = "bench.azurecr.io"
KEY = "bench-dashboard-key"
GOAL_MS = 300.0
STATUSES = (AssessmentStatus.HEALTHY, AssessmentStatus.UNHEALTHY, AssessmentStatus.UNHEALTHY,
            AssessmentStatus.PARTIAL, AssessmentStatus.UNSUPPORTED)


def image_row(number: int, now: datetime) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(f"bench-image-{number}".encode()).hexdigest()
    repository = f"team{number % 100}/app"
    row = new_image_row(REGISTRY, repository, digest)
    partition_key, row_key = image_keys(REGISTRY, repository, digest)
    status = STATUSES[number % len(STATUSES)]
    row.update(PartitionKey=partition_key, RowKey=row_key, tags=f'["build-{number}"]',
               platforms='["linux/amd64"]', status=status.value, analysis_status=status.value,
               first_pushed=now - timedelta(days=40), last_pushed=now - timedelta(days=40),
               assessed_at=now - timedelta(days=1), size_bytes=int64(1000))
    if status is AssessmentStatus.UNHEALTHY:
        row[count_column("active", Severity.CRITICAL)] = number % 3
        row[count_column("active", Severity.HIGH)] = number % 7
        row[count_column("active", Severity.MEDIUM)] = 1 + number % 11
    return row


def render_ms(store: Store, path: str, query: dict[str, str], now: datetime) -> float:
    request = DashboardRequest(method="GET", path=path, query=query, form={},
                               cookies={auth.SESSION_COOKIE: auth.session_value(KEY)},
                               headers={})
    started = time.perf_counter()
    response = handle(lambda: store, request, now)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {response.body[:300]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["DASHBOARD_KEY"] = KEY
    now = datetime.now(UTC)
    pages = (("overview, rows read", "", {}), ("overview, totals kept", "", {}),
             ("images", "images", {}),
             ("images unhealthy", "images", {"status": "unhealthy"}),
             ("images repository", "images", {"repository": "team42/app"}),
             ("vulnerabilities", "vulnerabilities", {"cve": "CVE-2024-0001"}),
             ("rules", "rules", {}), ("billing", "billing", {}))
    with tempfile.TemporaryDirectory(prefix="acr-scan-dashboard-") as folder:
        azurite = start_azurite(Path(folder) / "azurite", AzuritePorts.free(), in_memory=True)
        try:
            store = Store.from_connection_string(azurite.connection_string, prefix="bench")
            store.create()
            started = time.perf_counter()
            submit_batches(store.images.table,
                           ((TransactionOperation.UPSERT, image_row(number, now))
                            for number in range(args.images)), "seeding images")
            print(f"seeded {args.images} images in {time.perf_counter() - started:.1f} s")
            slow = []
            for name, path, query in pages:
                times = []
                for _ in range(args.runs):
                    if name == "overview, rows read":
                        forget_totals(store)
                    times.append(render_ms(store, path, query, now))
                median = statistics.median(times)
                print(f"  {name:20} median {median:7.1f} ms  slowest {max(times):7.1f} ms")
                if median > GOAL_MS:
                    slow.append(name)
        finally:
            azurite.stop()
    print(f"over {GOAL_MS:.0f} ms: {', '.join(slow)}" if slow else
          f"every page under {GOAL_MS:.0f} ms")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
