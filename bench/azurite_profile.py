"""Where Azurite's own CPU goes: profiles written by ``bench/azurite_profile.cjs`` (preloaded by
``bench_rescan.py --azurite-profile DIR``, one profile per timed week), split by service and
operation.

    .venv/bin/python bench/azurite_profile.py FILE.cpuprofile [--top 15]

A sample's operation is the outermost handler on its stack (a file under Azurite's
``<service>/handlers/``: ``queue MessagesHandler.enqueue``, ``table TableHandler.queryEntities``),
with a table batch's part (``TableHandler.batch handleBatchMerge``) while the batch still runs
synchronously; its operations continue after an ``await``, where their stacks start at their
own handler (``table TableHandler.mergeEntity``); a sample in a service's
files but no handler is ``<service> (HTTP, middleware)``; V8's own rows (garbage collector,
program) keep their names. Idle samples are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

PRELOAD = Path(__file__).resolve().with_name("azurite_profile.cjs")
LOADED = "acr-scan: azurite_profile.cjs loaded"
SERVICES = ("queue", "table", "blob")
IDLE = "(idle)"


def _service(url: str) -> str | None:
    for service in SERVICES:
        if f"/src/{service}/" in url:
            return service
    return None


def _operation(frames: list[dict[str, Any]]) -> str:
    """The label of one sample, its stack listed from the root."""
    service = None
    handler = None
    part = ""
    for frame in frames:
        url, name = frame["url"], frame["functionName"] or "(anonymous)"
        service = service or _service(url)
        if handler is None and "/handlers/" in url and _service(url):
            handler = f"{_service(url)} {Path(url).stem}.{name}"
        elif handler is not None and not part and name.startswith("handleBatch"):
            part = name
    if handler is not None:
        return f"{handler} {part}".rstrip()
    if service is not None:
        return f"{service} (HTTP, middleware)"
    return frames[-1]["functionName"] or "(anonymous)"


def split(profile: dict[str, Any]) -> tuple[Counter[str], Counter[str]]:
    """Samples by operation and by function (self time, ``name file:line``), idle left out."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parents = {child: node["id"] for node in profile["nodes"]
               for child in node.get("children", ())}
    stacks: dict[int, list[dict[str, Any]]] = {}
    operations: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for node_id, count in Counter(profile.get("samples", ())).items():
        frame = nodes[node_id]["callFrame"]
        if frame["functionName"] == IDLE:
            continue
        if node_id not in stacks:
            frames: list[dict[str, Any]] = []
            current: int | None = node_id
            while current is not None:  # a tree: each node has one parent
                frames.append(nodes[current]["callFrame"])
                current = parents.get(current)
            stacks[node_id] = frames[::-1]
        operations[_operation(stacks[node_id])] += count
        where = frame["url"].rsplit("/node_modules/", 1)[-1].removeprefix("file://")
        functions[f"{frame['functionName'] or '(anonymous)'} {where}:"
                  f"{frame['lineNumber'] + 1}"] += count
    return operations, functions


def report(path: Path, top: int = 10) -> str:
    """A profile's split as text: operations then functions, in shares of the busy samples."""
    profile = json.loads(path.read_text())
    operations, functions = split(profile)
    busy = sum(operations.values())
    interval = ((profile["endTime"] - profile["startTime"]) / max(1, len(profile["samples"]))
                / 1000)
    lines = [f"{path.name}: {busy} busy samples (~{busy * interval / 1000:.1f} s of Azurite's "
             "main thread)"]
    for title, counter in (("operations", operations), ("functions (self)", functions)):
        lines.append(f"  {title}:")
        lines += [f"    {100 * count / max(1, busy):5.1f}%  {name}"
                  for name, count in counter.most_common(top)]
    return "\n".join(lines)


class Profiler:
    """Profiles the Azurite processes (started with ``bench_storage.node_environment(profile=
    folder)``) over windows: ``start`` and ``stop`` send SIGUSR2; ``stop`` waits for each
    profile and names it ``<label>``."""

    def __init__(self, folder: Path, pids: tuple[int, ...]) -> None:
        self.folder = folder
        self.pids = tuple(pid for pid in pids if _is_node(pid))
        self.seen: set[str] = set()

    def start(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGUSR2)

    def stop(self, label: str, timeout: float = 60.0) -> list[Path]:
        for pid in self.pids:
            os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        written: list[Path] = []
        while len(written) < len(self.pids):
            done = sorted(name for name in os.listdir(self.folder)
                          if name.endswith(".done") and name not in self.seen)
            for name in done:
                self.seen.add(name)
                source = self.folder / name.removesuffix(".done")
                target = self.folder / f"{label}-{source.name.split('-')[1]}.cpuprofile"
                source.rename(target)
                written.append(target)
            failed = [name for name in os.listdir(self.folder) if name.endswith(".failed")]
            if failed:
                raise RuntimeError(f"Azurite could not write its profile: {failed}")
            if len(written) < len(self.pids):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no profile from Azurite after {timeout:.0f} s")
                time.sleep(0.1)
        return written


def _is_node(pid: int) -> bool:
    try:
        return b"node" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.profiles:
        print(report(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
