"""What one notification queue message costs: the SDK's ``send_message`` against
``NotificationQueue.send`` (its own pipeline, over http.client as it runs without a proxy, and
over ``RequestsTransport`` as it runs with one), CPU and wall ms per message.

    .venv/bin/python bench/bench_queue_send.py [--messages 1000] [--rounds 3]

Starts its own Azurite on free loopback ports, in memory, and sends the same notification
(a message of ten findings, as a rescan sends one per image that gains findings) N times each
way, the two ways taking turns for ``--rounds`` rounds after a warm-up; each way has its own
queue, emptied after each round. CPU is this thread's (``time.thread_time``): the client's
work, not Azurite's. Prints every round and the median per way.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.local.services import AzuritePorts, start_azurite
from scanning.store.clients import StorageClients
from scanning.store.queue import NotificationQueue

WARM_UP = 50


def notification() -> str:
    """A notification as ``scanning.notify.send`` serialises it: ten top findings."""
    return json.dumps({
        "registry": "myacr.azurecr.io", "repository": "team/app",
        "digest": "sha256:" + "ab" * 32, "tags": ["1.4.2", "latest"], "status": "unhealthy",
        "counts": {"unknown": 0, "negligible": 2, "low": 11, "medium": 23, "high": 9,
                   "critical": 2},
        "newFindings": 3,
        "topFindings": [
            {"id": f"CVE-2024-{number:05d}", "severity": "high", "package": "openssl",
             "installedVersion": "3.0.11-1~deb12u1", "fixedVersion": "3.0.11-1~deb12u2",
             "remediation": "Upgrade openssl to 3.0.11-1~deb12u2"}
            for number in range(10)],
    }, sort_keys=True)


def measure(send: Callable[[], None], messages: int) -> tuple[float, float]:
    """CPU and wall milliseconds per message over ``messages`` sends."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(messages):
        send()
    return ((time.thread_time() - cpu) * 1000 / messages,
            (time.perf_counter() - wall) * 1000 / messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = notification()
    with tempfile.TemporaryDirectory(prefix="acr-scan-azurite-") as folder:
        azurite = start_azurite(Path(folder), AzuritePorts.free(), in_memory=True)
        try:
            clients = StorageClients.from_connection_string(azurite.connection_string)
            sdk_client = clients.queue_service().get_queue_client("bench-sdk")
            sdk_client.create_queue()
            queue = NotificationQueue(clients, "bench-pipeline")
            queue.create()
            over_requests = NotificationQueue(clients, "bench-requests", use_requests=True)
            over_requests.create()
            # What NotificationQueue.send did before it had its own pipeline.
            encoded = base64.b64encode(body.encode()).decode()
            ways: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
                "sdk send_message": (lambda: sdk_client.send_message(encoded),
                                     sdk_client.clear_messages),
                "NotificationQueue.send": (lambda: queue.send(body),
                                           clients.queue_service().get_queue_client(
                                               "bench-pipeline").clear_messages),
                "send over requests": (lambda: over_requests.send(body),
                                       clients.queue_service().get_queue_client(
                                           "bench-requests").clear_messages),
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
            for send, clear in ways.values():
                measure(send, WARM_UP)
                clear()
            print(f"{args.messages} messages of {len(body)} bytes per round")
            for round_number in range(1, args.rounds + 1):
                for name, (send, clear) in ways.items():
                    cpu, wall = measure(send, args.messages)
                    clear()
                    results[name].append((cpu, wall))
                    print(f"round {round_number} {name:24} {cpu:.3f} CPU ms  "
                          f"{wall:.3f} wall ms per message")
            for name, rounds in results.items():
                print(f"median {name:25} {statistics.median(cpu for cpu, _ in rounds):.3f} "
                      f"CPU ms  {statistics.median(wall for _, wall in rounds):.3f} wall ms "
                      f"per message")
        finally:
            azurite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
