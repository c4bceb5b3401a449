"""``bench/azurite_profile.cjs`` and ``.py``: Azurite profiles its own CPU over the windows the
bench asks for (SIGUSR2 to start and to stop), and the split names the operations it served in
each window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from scanning.local.services import Azurite, AzuritePorts, start_azurite
from tests.bench.modules import load_bench

profiles = load_bench("azurite_profile")
bench_storage = load_bench("bench_storage")


def _frame(name: str, url: str = "", line: int = 0) -> dict[str, Any]:
    return {"functionName": name, "url": url, "lineNumber": line, "columnNumber": 0,
            "scriptId": "0"}


QUEUE = "file:///x/node_modules/azurite/dist/src/queue"
TABLE = "file:///x/node_modules/azurite/dist/src/table"


def test_the_split_labels_each_busy_sample_by_its_outermost_handler() -> None:
    nodes = [
        (1, _frame("(root)"), [2, 3, 8, 9]),
        (2, _frame("handle", "file:///x/node_modules/express/lib/router/layer.js", 84), [4, 5]),
        (3, _frame("(idle)"), []),
        (4, _frame("enqueue", f"{QUEUE}/handlers/MessagesHandler.js", 109), [6]),
        (5, _frame("batch", f"{TABLE}/handlers/TableHandler.js", 520), [7]),
        (6, _frame("insertMessage", f"{QUEUE}/persistence/LokiQueueMetadataStore.js", 9), []),
        (7, _frame("handleBatchMerge", f"{TABLE}/batch/TableBatchOrchestrator.js", 400), [10]),
        (8, _frame("(garbage collector)"), []),
        (9, _frame("serializer", f"{QUEUE}/generated/middleware/serializer.js", 15), []),
        (10, _frame("mergeEntity", f"{TABLE}/handlers/TableHandler.js", 248), []),
    ]
    profile = {"nodes": [{"id": node_id, "callFrame": frame, "children": children}
                         for node_id, frame, children in nodes],
               "samples": [6, 6, 6, 3, 3, 10, 10, 8, 9, 4], "startTime": 0, "endTime": 5000}
    operations, functions = profiles.split(profile)
    assert dict(operations) == {
        "queue MessagesHandler.enqueue": 4,
        "table TableHandler.batch handleBatchMerge": 2,
        "(garbage collector)": 1,
        "queue (HTTP, middleware)": 1,
    }
    assert functions.most_common(2) == [
        ("insertMessage azurite/dist/src/queue/persistence/LokiQueueMetadataStore.js:10", 3),
        ("mergeEntity azurite/dist/src/table/handlers/TableHandler.js:249", 2)]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    folder = tmp_path_factory.mktemp("profiles")
    server = start_azurite(tmp_path_factory.mktemp("azurite-profile"), AzuritePorts.free(),
                           in_memory=True,
                           env=bench_storage.node_environment(profile=folder))
    yield server, folder
    server.stop()


def test_each_window_s_profile_holds_the_operations_served_in_it(
        profiled: tuple[Azurite, Path]) -> None:
    server, folder = profiled
    log = (server.data_dir / "azurite.log").read_text()
    profiler = profiles.Profiler(folder, (server.process.pid,))
    queue = QueueClient.from_connection_string(server.connection_string, "profiled")
    queue.create_queue()
    table = TableServiceClient.from_connection_string(
        server.connection_string).create_table("profiled")
    profiler.start()
    for number in range(200):
        queue.send_message(f"message {number}")
    queued = profiler.stop("queue")
    profiler.start()
    for batch in range(20):
        table.submit_transaction([("upsert", {"PartitionKey": f"p{batch}", "RowKey": f"r{row}",
                                              "n": row}) for row in range(50)])
    tabled = profiler.stop("table")
    assert profiles.LOADED in log
    assert ([path.name for path in queued], [path.name for path in tabled]) == (
        [f"queue-{server.process.pid}.cpuprofile"], [f"table-{server.process.pid}.cpuprofile"])
    served = []
    for path in (*queued, *tabled):
        operations, _ = profiles.split(json.loads(path.read_text()))
        served.append((
            sorted({name.split()[0] for name in operations
                    if name.split()[0] in profiles.SERVICES}),
            [name for name in ("queue MessagesHandler.enqueue",
                               "table TableHandler.mergeEntity")
             if operations[name] > 0]))
    # Each window saw its own operations and none of the other's (blob: nothing was asked).
    # A batch's upserts (insert-or-merge) run after an await: their stacks start at
    # mergeEntity, not under TableHandler.batch.
    assert served == [(["queue"], ["queue MessagesHandler.enqueue"]),
                      (["table"], ["table TableHandler.mergeEntity"])]
    assert "queue MessagesHandler.enqueue" in profiles.report(queued[0], 5)
