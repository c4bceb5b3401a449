"""Shared helpers for the version tests: locate and read the shared reference tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"
VECTORS = TESTDATA / "version-vectors"
SIGN = {"<": -1, "=": 0, ">": 1}


def table_rows(name: str) -> Iterator[list[str]]:
    """Rows of a version-vectors table (comments skipped), or skip the test if absent."""
    path = VECTORS / name
    if not path.is_file():
        pytest.skip(f"shared test data not present: {path}")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line:
            continue
        yield line.split("\t")


def report(failures: list[str], total: int) -> str:
    shown = "\n".join(failures[:50])
    return f"{len(failures)} of {total} rows disagree:\n{shown}"
