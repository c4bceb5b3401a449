"""Benchmark of the Azure Linux / CBL-Mariner OVAL adapter (issue 13's goal: < 5 s).

    .venv/bin/python bench/bench_oval.py [--runs 3]

Reads (xz), converts and compiles both real OVAL files in ../shared/testdata
(``advisories/native-feeds/azure-linux/``: CBL-Mariner 2.0, 4.2 MB of XML, and Azure Linux
3.0, 2.2 MB) into one index, and writes it; prints the best of ``--runs`` runs per step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.advisories.azure_linux import read_oval_file
from scanning.advisories.index import compile_index, write_index

FEEDS = (Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "advisories"
         / "native-feeds" / "azure-linux")
FILES = ("cbl-mariner-2.0-oval.xml.xz", "azurelinux-3.0-oval.xml.xz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not all((FEEDS / name).is_file() for name in FILES):
        print(f"shared OVAL files not found in {FEEDS}", file=sys.stderr)
        return 1
    best = {"read + convert": float("inf"), "compile": float("inf"), "write": float("inf")}
    for _ in range(args.runs):
        started = time.perf_counter()
        results = [read_oval_file(FEEDS / name) for name in FILES]
        converted = time.perf_counter()
        index = compile_index(record for result in results for record in result.records)
        compiled = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            write_index(index, Path(folder) / "index.idx")
        written = time.perf_counter()
        best["read + convert"] = min(best["read + convert"], converted - started)
        best["compile"] = min(best["compile"], compiled - converted)
        best["write"] = min(best["write"], written - compiled)
    records = sum(len(result.records) for result in results)
    rejected = sum(len(result.rejected) for result in results)
    for step, seconds in best.items():
        print(f"{step}: {seconds:.2f} s")
    print(f"total: {sum(best.values()):.2f} s for {records} records ({rejected} definitions "
          f"rejected), counts {dict(sorted(index.counts.items()))} (goal < 5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
