"""The demo's advisory index, built from ``demo_records/`` (invented records, see its README)."""

from __future__ import annotations

from pathlib import Path

from scanning.advisories.index import AdvisoryIndex, compile_index, write_index
from scanning.advisories.osv import iter_records

DEMO_RECORDS = Path(__file__).resolve().parent / "demo_records"


def build_demo_index(path: Path) -> AdvisoryIndex:
    """Compile the demo records into an index file at ``path``; returns the index."""
    index = compile_index(
        (r for r in iter_records(DEMO_RECORDS) if r["id"].startswith("DEMO-")),
        sources=[str(DEMO_RECORDS)],
    )
    write_index(index, path)
    return index
