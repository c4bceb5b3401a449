"""`python -m scanning db`: build, update, publish and inspect the advisory index.

* ``db build --osv PATH [--osv PATH …] [--alpine-secdb PATH …] [--azure-linux-oval FILE …]
  --out FILE [--strict]``: compile OSV records (folders, files, zips), Alpine secdb documents
  and Azure Linux / CBL-Mariner OVAL files into one index file; records that cannot be
  compiled are listed (count and first reasons), and ``--strict`` exits 1 when there are any
  (the index is still written).
* ``db update [--out FILE] [--ecosystem NAME …] [--cache DIR]``: download
  ``<ADVISORY_FEED_URL>/<ecosystem>/all.zip`` for each ecosystem (resumable; progress on a
  terminal), and for ``Mariner`` and ``Azure Linux`` the OVAL files under
  ``AZURE_LINUX_OVAL_URL`` instead, then compile. Any failure leaves the previous index file
  untouched.

OVAL definitions that cannot become records are counted and the first reasons printed.
* ``db publish FILE``: upload the index to Blob Storage (``ADVISORY_CONTAINER``).
* ``db fetch --out FILE``: download the published index from Blob Storage.
* ``db info FILE``: build time and per-ecosystem record and rejected-record counts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.azure_linux import OvalResult, read_oval_file
from scanning.advisories.feeds import default_progress
from scanning.advisories.index import AdvisoryIndex, compile_index, load_index, write_index
from scanning.advisories.refresh import (
    download_and_compile,
    feed_records,
    oval_rejected,
    update_ecosystems,
)
from scanning.config import setting
from scanning.errors import BadRequest

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

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
        "--azure-linux-oval",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="an Azure Linux / CBL-Mariner OVAL file, plain or .xz, named as upstream names it "
        "(cbl-mariner-2.0-oval.xml, azurelinux-3.0-oval.xml.xz; repeatable)",
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


def _records(
    osv_paths: list[Path], secdb_paths: list[Path], ovals: tuple[OvalResult, ...] = ()
) -> Iterator[dict[str, Any]]:
    for path in secdb_paths:
        yield from iter_secdb_osv(path)
    yield from feed_records(osv_paths, ovals)


def run_build(args: argparse.Namespace) -> int:
    if not args.osv and not args.alpine_secdb and not args.azure_linux_oval:
        raise BadRequest(
            "db build needs at least one --osv, --alpine-secdb or --azure-linux-oval source"
        )
    ovals = tuple(read_oval_file(path) for path in args.azure_linux_oval)
    index = compile_index(
        _records(args.osv, args.alpine_secdb, ovals),
        sources=[str(p) for p in [*args.osv, *args.alpine_secdb, *args.azure_linux_oval]],
        ecosystems=args.ecosystem,
        rejected=oval_rejected(ovals),
    )
    write_index(index, args.out)
    _print_summary(index, args.out)
    _print_rejected(index)
    return 1 if args.strict and index.rejected else 0


def run_update(args: argparse.Namespace) -> int:
    cache: Path = args.cache or args.out.parent / "feeds"
    # A failed download raises before anything is written: args.out stays as it was.
    index = download_and_compile(cache, update_ecosystems(args.ecosystem),
                                 progress=default_progress())
    write_index(index, args.out)
    _print_summary(index, args.out)
    _print_rejected(index)
    return 0


def _storage() -> BlobServiceClient:
    """Blob Storage from the settings; when none is configured, the running local stack's
    (``acr-scan local up``), so ``db publish`` needs no setting locally."""
    from scanning.local.stack import DEFAULT_DATA_DIR, storage_connection_string
    from scanning.store.clients import StorageClients

    if not setting("AzureWebJobsStorage") and not setting("AzureWebJobsStorage__blobServiceUri"):
        local = storage_connection_string(DEFAULT_DATA_DIR)
        if local:
            return StorageClients.from_connection_string(local).blob_service()
    return StorageClients.from_settings().blob_service()


def run_publish(args: argparse.Namespace) -> int:
    from scanning.store.advisory_index import publish_index

    index = publish_index(_storage(), args.file).index
    _print_summary(index, args.file)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from scanning.store.advisory_index import load_index_from_blob

    index = load_index_from_blob(_storage())
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
