"""Download the advisory feeds and compile them into an index: what `db update` and the daily
refresh timer both do (the timer then publishes the index when its content changed)."""

from __future__ import annotations

from pathlib import Path

from scanning.advisories.ecosystems import FeedEcosystem
from scanning.advisories.feeds import Progress, download_feed
from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from scanning.config import setting


def update_ecosystems(requested: list[str]) -> list[str]:
    """The ecosystems to download: those asked for, else ``ADVISORY_ECOSYSTEMS``, else all."""
    if requested:
        return requested
    configured = [e.strip() for e in setting("ADVISORY_ECOSYSTEMS").split(",") if e.strip()]
    return configured or [e.value for e in FeedEcosystem]


def download_and_compile(cache: Path, ecosystems: list[str], *,
                         progress: Progress | None = None) -> AdvisoryIndex:
    """Download ``<ADVISORY_FEED_URL>/<ecosystem>/all.zip`` for each ecosystem into ``cache``
    (resumable), then compile them. Compiling starts only after every download succeeded, so
    a failure leaves whatever index the caller had untouched."""
    zips = [download_feed(ecosystem, cache / ecosystem / "all.zip", progress=progress)
            for ecosystem in ecosystems]
    records = (record for path in zips for record in iter_records(path))
    return compile_index(records, sources=[str(path) for path in zips], ecosystems=ecosystems)
