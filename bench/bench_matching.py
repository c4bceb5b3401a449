"""Benchmark of the advisory index and matching (issue 4's performance goals).

    .venv/bin/python bench/bench_matching.py [--inventories 10000] [--packages 300]

1. compile the PyPA + Go databases (~7,000 records) from ../shared/testdata: goal < 10 s;
2. load the compiled index: goal < 1 s;
3. match a 1,000-package inventory: goal < 50 ms;
4. re-assess N stored inventories of M packages (the weekly rescan): goal < 60 s for
   10,000 x 300 on 2 cores. Run in one process; the rescan fans out over workers, so two cores
   halve the wall time.

Inventories are built from the index's own package names (so lookups hit advisories, the
expensive path) mixed with names that have none, at versions spread over the ranges.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.advisories.index import AdvisoryIndex, compile_index, load_index, write_index
from scanning.advisories.osv import iter_records
from scanning.matching import match_inventory
from scanning.model import Package, PackageType

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "advisories" / "osv"


def _inventory(index: AdvisoryIndex, size: int, rng: random.Random) -> list[Package]:
    pypi = list(index.packages.get("PyPI", {}))
    go = list(index.packages.get("Go", {}))
    packages = []
    for number in range(size):
        # About one package in five has advisories, as in a typical application image.
        if number % 5 == 0 and pypi and go:
            if number % 2:
                kind, name = PackageType.PYPI, rng.choice(pypi)
            else:
                kind, name = PackageType.GOLANG, rng.choice(go)
        else:
            kind, name = PackageType.PYPI, f"no-advisories-{number}"
        version = f"{rng.randint(0, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 10)}"
        packages.append(Package(type=kind, name=name, version=version, purl="", path=f"p{number}"))
    return packages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inventories", type=int, default=10_000)
    parser.add_argument("--packages", type=int, default=300)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"shared advisories not found at {SHARED}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    records = [
        *iter_records(SHARED / "pypi-pypa-advisory-database"),
        *iter_records(SHARED / "go-vulndb"),
    ]
    index = compile_index(records)
    compiled = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.idx"
        write_index(index, path)
        size = path.stat().st_size
        started = time.perf_counter()
        index = load_index(path)
        loaded = time.perf_counter() - started
    rng = random.Random(4)
    big = _inventory(index, 1000, rng)
    match_inventory(None, big, index)  # first touch compiles the entries it meets
    started = time.perf_counter()
    result = match_inventory(None, big, index)
    matched = time.perf_counter() - started
    inventories = [_inventory(index, args.packages, rng) for _ in range(20)]
    started = time.perf_counter()
    findings = 0
    for number in range(args.inventories):
        findings += len(match_inventory(None, inventories[number % 20], index).findings)
    rescan = time.perf_counter() - started
    print(f"compile {len(records)} records (read + compile): {compiled:.2f} s (goal < 10 s)")
    print(f"index file: {size / 1e6:.1f} MB; load: {loaded:.2f} s (goal < 1 s)")
    print(
        f"match 1,000 packages: {matched * 1000:.1f} ms, {len(result.findings)} findings "
        "(goal < 50 ms)"
    )
    print(
        f"re-assess {args.inventories} inventories x {args.packages} packages: {rescan:.1f} s "
        f"on one core ({args.inventories / rescan:.0f} inventories/s, {findings} findings; "
        "goal < 60 s on 2 cores)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
