"""`python -m scanning db`: build, update, publish and inspect the advisory index.

* ``db build --osv PATH [--osv PATH …] [--alpine-secdb PATH …] --out FILE [--strict]``:
  compile OSV records (folders, files, zips) and Alpine secdb documents into one index file;
  records that cannot be compiled are listed (count and first reasons), and ``--strict``
  exits 1 when there are any (the index is still written).
* ``db update [--out FILE] [--ecosystem NAME …] [--cache DIR]``: download
  ``<ADVISORY_FEED_URL>/<ecosystem>/all.zip`` for each ecosystem (resumable; progress on a
  terminal), then compile. Any failure leaves the previous index file untouched.
* ``db publish FILE``: upload the index to Blob Storage (``ADVISORY_CONTAINER``).
* ``db fetch --out FILE``: download the published index from Blob Storage.
* ``db info FILE``: build time and per-ecosystem record and rejected-record counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.ecosystems import FeedEcosystem
from scanning.advisories.feeds import default_progress, download_feed
from scanning.advisories.index import AdvisoryIndex, compile_index, load_index, write_index
from scanning.advisories.osv import iter_records
from scanning.config import setting
from scanning.errors import BadRequest

logger = logging.getLogger(__name__)

DEFAULT_INDEX = Path(".local/advisories/index.idx")
# Rejected records whose reasons build and update print; the rest are counted.
SHOWN_REJECTIONS = 10


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db", help="build, update and publish the advisory index"
    )
    commands = parser.add_subparsers(dest="db_command", required=True)

    build = commands.add_parser("build", help="compile OSV records into an index file")
    build.add_argument(
        "--osv",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a folder, file or zip of OSV records (repeatable)",
    )
    build.add_argument(
        "--alpine-secdb",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="an Alpine secdb YAML/JSON document or a folder of them (repeatable)",
    )
    build.add_argument(
        "--ecosystem",
        action="append",
        default=[],
        metavar="NAME",
        help="keep only these base ecosystems (repeatable; default: all)",
    )
    build.add_argument("--out", type=Path, required=True, metavar="FILE")
    build.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a record could not be compiled (the index is still written)",
    )
    build.set_defaults(handler=run_build)

    update = commands.add_parser("update", help="download the OSV bulk feeds and compile them")
    update.add_argument("--out", type=Path, default=DEFAULT_INDEX, metavar="FILE")
    update.add_argument(
        "--ecosystem",
        action="append",
        default=[],
        metavar="NAME",
        help="ecosystems to download (repeatable; default: ADVISORY_ECOSYSTEMS or all)",
    )
    update.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="where downloaded zips are kept between runs (default: next to --out)",
    )
    update.set_defaults(handler=run_update)

    publish = commands.add_parser("publish", help="upload an index file to Blob Storage")
    publish.add_argument("file", type=Path)
    publish.set_defaults(handler=run_publish)

    fetch = commands.add_parser("fetch", help="download the published index from Blob Storage")
    fetch.add_argument("--out", type=Path, default=DEFAULT_INDEX, metavar="FILE")
    fetch.set_defaults(handler=run_fetch)

    info = commands.add_parser("info", help="show an index file's build time and counts")
    info.add_argument("file", type=Path)
    info.set_defaults(handler=run_info)


def _records(osv_paths: list[Path], secdb_paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in osv_paths:
        yield from iter_records(path)
    for path in secdb_paths:
        yield from iter_secdb_osv(path)


def run_build(args: argparse.Namespace) -> int:
    if not args.osv and not args.alpine_secdb:
        raise BadRequest("db build needs at least one --osv or --alpine-secdb source")
    index = compile_index(
        _records(args.osv, args.alpine_secdb),
        sources=[str(p) for p in [*args.osv, *args.alpine_secdb]],
        ecosystems=args.ecosystem,
    )
    write_index(index, args.out)
    _print_summary(index, args.out)
    _print_rejected(index)
    return 1 if args.strict and index.rejected else 0


def update_ecosystems(requested: list[str]) -> list[str]:
    if requested:
        return requested
    configured = [e.strip() for e in setting("ADVISORY_ECOSYSTEMS").split(",") if e.strip()]
    return configured or [e.value for e in FeedEcosystem]


def run_update(args: argparse.Namespace) -> int:
    ecosystems = update_ecosystems(args.ecosystem)
    cache: Path = args.cache or args.out.parent / "feeds"
    progress = default_progress()
    zips = [
        download_feed(ecosystem, cache / ecosystem / "all.zip", progress=progress)
        for ecosystem in ecosystems
    ]
    # Compile only after every download succeeded: a failure above leaves args.out as it was.
    index = compile_index(_records(zips, []), sources=[str(z) for z in zips], ecosystems=ecosystems)
    write_index(index, args.out)
    _print_summary(index, args.out)
    _print_rejected(index)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from scanning.advisories.blob import publish_index
    from scanning.store.clients import StorageClients

    index = publish_index(StorageClients.from_settings().blob_service(), args.file)
    _print_summary(index, args.file)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from scanning.advisories.blob import load_index_from_blob
    from scanning.store.clients import StorageClients

    index = load_index_from_blob(StorageClients.from_settings().blob_service())
    write_index(index, args.out)
    _print_summary(index, args.out)
    return 0


def run_info(args: argparse.Namespace) -> int:
    _print_summary(load_index(args.file), args.file)
    return 0


def _print_summary(index: AdvisoryIndex, path: Path) -> None:
    out = sys.stdout
    rejected = index.rejected_counts()
    total = f", {len(index.rejected)} rejected" if index.rejected else ""
    out.write(f"{path}: built {index.built}, {len(index.advisories)} advisories{total}\n")
    for ecosystem in sorted(index.counts.keys() | rejected.keys()):
        count = index.counts.get(ecosystem, 0)
        extra = f" ({rejected[ecosystem]} rejected)" if ecosystem in rejected else ""
        out.write(f"  {ecosystem}: {count}{extra}\n")


def _print_rejected(index: AdvisoryIndex) -> None:
    """The first rejected records with their reasons: what to fix or report upstream."""
    if not index.rejected:
        return
    shown = index.rejected[:SHOWN_REJECTIONS]
    more = len(index.rejected) - len(shown)
    out = sys.stdout
    out.write("rejected records (packages they name are reported as not assessed):\n")
    for record in shown:
        out.write(f"  {record['id']}: {record['reason']}\n")
    if more:
        out.write(f"  … and {more} more (`db info` counts them per ecosystem)\n")
