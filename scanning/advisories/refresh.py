"""Download the advisory feeds and compile them into an index: what `db update` and the daily
refresh timer both do (the timer then publishes the index when its content changed).

OSV bulk zips serve every ecosystem except CBL-Mariner and Azure Linux, which come from
Microsoft's OVAL files (``azure_linux``), so a CVE of those is compiled from one source only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from scanning.advisories.azure_linux import OvalResult, download_oval
from scanning.advisories.ecosystems import FeedEcosystem
from scanning.advisories.feeds import Progress, download_feed
from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from scanning.config import setting

# Ecosystems taken from Microsoft's OVAL files rather than an OSV bulk zip.
OVAL_ECOSYSTEMS = frozenset({FeedEcosystem.MARINER.value, FeedEcosystem.AZURE_LINUX.value})


def update_ecosystems(requested: list[str]) -> list[str]:
    """The ecosystems to download: those asked for, else ``ADVISORY_ECOSYSTEMS``, else all."""
    if requested:
        return requested
    configured = [e.strip() for e in setting("ADVISORY_ECOSYSTEMS").split(",") if e.strip()]
    return configured or [e.value for e in FeedEcosystem]


def feed_records(zips: Iterable[Path], ovals: Iterable[OvalResult]) -> Iterator[dict[str, Any]]:
    for path in zips:
        yield from iter_records(path)
    for oval in ovals:
        yield from oval.records


def oval_rejected(ovals: Iterable[OvalResult]) -> list[dict[str, Any]]:
    """The OVAL definitions that could not become records, for the index's rejected list."""
    return [record for oval in ovals for record in oval.rejected_records()]


def download_and_compile(cache: Path, ecosystems: list[str], *,
                         progress: Progress | None = None) -> AdvisoryIndex:
    """Download ``<ADVISORY_FEED_URL>/<ecosystem>/all.zip`` for each OSV ecosystem and the
    OVAL files (``AZURE_LINUX_OVAL_URL``) when Mariner or Azure Linux is asked for, into
    ``cache`` (resumable), then compile them, rejected OVAL definitions included in the index's
    rejected list. Compiling starts only after every download succeeded, so a
    failure leaves whatever index the caller had untouched."""
    zips = [download_feed(ecosystem, cache / ecosystem / "all.zip", progress=progress)
            for ecosystem in ecosystems if ecosystem not in OVAL_ECOSYSTEMS]
    ovals: tuple[OvalResult, ...] = ()
    if OVAL_ECOSYSTEMS.intersection(ecosystems):
        ovals = download_oval(cache / "azure-linux-oval", progress=progress)
    return compile_index(feed_records(zips, ovals),
                         sources=[str(path) for path in zips] + [oval.where for oval in ovals],
                         ecosystems=ecosystems, rejected=oval_rejected(ovals))
