"""The weekly rescan of stored images against Azurite (issue 5's goal: 10,000 images < 60 s).

    .venv/bin/python bench/bench_rescan.py [--images 10000] [--packages 300] [--workers 8]
        [--processes N] [--azurite-on-disk] [--blob-metadata loki|mariadb] [--table-index]
        [--mode in-process|orchestration] [--registries N]
        [--chunk-images 500] [--distinct N] [--weeks 5pct,1pct,unchanged]
        [--azurite-profile DIR] [--azurite-semi-space MIB] [--table-bodies]

Starts its own Azurite on free loopback ports, in memory (``--azurite-on-disk``: persisted in a
temporary folder; ``--blob-metadata mariadb``: its blob service keeps blob metadata in a private
MariaDB server, which past ~10,000 images is the difference between a run of minutes and one of
hours; ``--table-index``: its table store keeps each table's rows in a key map, from which it
reads a query's pinned partition and a point operation's entity and to which it adds a row
without moving a sorted index, pages a whole-table listing from its continuation and merges
without an index scan, instead of scanning, as Azure does; ``--table-bodies``: its table
process sends responses and reads batch bodies as text, without the Buffer copies that set how
many garbage collections it runs; see ``bench_storage.py``),
then:

1. builds advisory indexes from real records when ``../shared/testdata/advisories`` exists
   (the Alpine secdb for v3.11 and the PyPA database, ~4,900 records), else from the demo
   records: index A lacks 6% of the records, B 1% (B adds 5% of the records to A), C has
   them all, with another 0.5% of the records present in B modified (``modified`` moved on,
   an alias added), so C changes 1% of the records (0.5% new, 0.5% modified);
2. writes N images as scans would have left them (rows and the pull ledger in batched
   transactions, the inventory blobs one by one): the image row (a push with a tag), the
   inventory blob (one linux/amd64 platform, Alpine 3.11, M packages: one in five an OS
   package, the rest PyPI; names drawn from the packages the records name and from names
   with no advisories, versions from the records' own fixed versions so some are vulnerable
   and most are not), and a pull in the last 30 days;
3. publishes A and runs ``rescan_pulled`` once, so every image has a stored
   assessment (not timed: it stands for the weeks before);
4. times ``rescan_pulled`` three times: after publishing B (5% of the records new: a
   stress case, far more than a real week of these feeds), C (1% changed: a busy week; PyPA
   publishes a few dozen records a week, the Alpine 3.11 secdb none) and C again (nothing
   changed).

``--weeks`` times only some of them (``5pct``, ``1pct``, ``unchanged``; they run in that
order): step 3 then assesses against the index the first of them follows (B before ``1pct``,
C before ``unchanged``), so each week changes what it says.

Past 10,000 images (or with ``--distinct N`` below ``--images``) steps 2 and 3 take a shortcut,
since a first assessment of every image would take most of an hour on 2 cores: only
``--distinct`` images (default 500) and 16 probes (images with the packages of distinct ones)
are written and assessed for real; every other image ``n`` is then written as the copy of the
assessed image ``n % distinct``: its row (assessment columns, findings document and inventory
copy, with ``n``'s digest, repository, tags and times), inventory blob, pull and history record,
in batched transactions over the registry's 16 image partitions. Each probe's really assessed
row and blob are first compared with the copy made from its template: every column but the
random generation id must be equal, else the bench stops. The timed weeks are the same code
either way; the images share ``--distinct`` package sets.

``--mode orchestration`` runs each of these as Azure runs the timers' rescan: the
``rescan_images`` orchestration (``scanning.functions.rescans``) on the local host's Durable
runtime, its chunk activities in ``--processes`` spawned worker processes (each standing for
one Functions instance: it builds its own storage clients and loads the index once), and
reports per-chunk wall time (p50, p95, max) and each worker's peak RSS.

It reports the wall time, how many images were proven unaffected from their row, re-matched
from their inventory and given new findings, the CPU seconds spent matching
(``match_inventory``), decoding inventories (from the row's copy or the blob) and in the rest
of this process (storage client work, rules, serialisation), the worker processes' CPU
seconds, Azurite's own CPU seconds, and the storage requests per image (this process only).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import logging
import multiprocessing
import os
import random
import resource
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import azure.durable_functions as df
import azure.functions as func
import zstandard
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import EntityProperty, TableClient, TransactionOperation
from azurite_profile import Profiler
from azurite_profile import report as profile_report
from bench_storage import BLOB_METADATA, SEMI_SPACE_MIB, start_storage

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.demo import DEMO_RECORDS
from scanning.advisories.index import compile_index, write_index
from scanning.advisories.osv import iter_records
from scanning.analyzers import analyzer_set_version
from scanning.functions import orchestration, rescans
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.layer_types import LayerInfo
from scanning.local.durable import Activity, DurableRuntime, Orchestrator
from scanning.local.host import ACTIVITY_TRIGGER, ORCHESTRATION_TRIGGER, index_app, user_callable
from scanning.model import (
    AssessmentStatus,
    FindingCounts,
    OSInfo,
    Package,
    PackageType,
    Platform,
    ScanTrigger,
)
from scanning.service import evaluation, fanout, rematch
from scanning.service.context import Services
from scanning.service.evaluation import inventory_digest, save_inventories
from scanning.service.rematch import rescan_id
from scanning.service.rescan import RescanReport, rescan_pulled
from scanning.store import Store
from scanning.store.advisory_index import publish_index
from scanning.store.clients import StorageClients, StorageSettings
from scanning.store.entities import MAX_BATCH, int64, read_entity, submit_batches
from scanning.store.findings import EncodedFindings, findings_columns, new_generation
from scanning.store.findings import _compress as compress_findings
from scanning.store.images import (
    DOCUMENT_COLUMN,
    KEYS_COLUMN,
    MAX_BATCH_BYTES,
    image_keys,
    inventory_columns,
    new_image_row,
)
from scanning.store.images import _payload_size as payload_size
from scanning.store.keys import encode_key, join_key
from scanning.store.match_keys import MatchKeys, encode_match_keys, read_match_keys
from scanning.store.scans import ScanRecord

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "advisories"
SECDB = SHARED / "alpine-secdb-yaml" / "v3.11"
PYPA = SHARED / "osv" / "pypi-pypa-advisory-database"
REGISTRY = "bench.azurecr.io"
# ``--registries N`` spreads the images over N registries (a fleet) in blocks of
# REGISTRY_BLOCK numbers, so the distinct images (0..499) are in the first and the probes
# (500..515) in the second: the copy self-check then compares copies moved across registries.
REGISTRY_BLOCK = 500
REGISTRIES = 1
ALPINE = OSInfo(id="alpine", version_id="3.11.5", pretty_name="Alpine Linux v3.11")
PLATFORM = Platform(os="linux", architecture="amd64")
OS_SHARE = 5  # one package in five is an OS package
VULNERABLE_SHARE = 5  # one package in five has records naming it


# ------------------------------------------------------------------------------- advisories


def load_records() -> tuple[list[dict[str, Any]], str]:
    if SECDB.is_dir() and PYPA.is_dir():
        return [*iter_secdb_osv(SECDB), *iter_records(PYPA)], f"{SECDB} + {PYPA}"
    return list(iter_records(DEMO_RECORDS)), f"{DEMO_RECORDS} (shared test data absent)"


@dataclass(slots=True)
class Catalogue:
    """Package names the records name, with the versions their ranges mention."""

    alpine: dict[str, list[str]] = field(default_factory=dict)
    pypi: dict[str, list[str]] = field(default_factory=dict)


def catalogue(records: list[dict[str, Any]]) -> Catalogue:
    found = Catalogue()
    for record in records:
        for affected in record.get("affected", []):
            package = affected.get("package", {})
            ecosystem = str(package.get("ecosystem", ""))
            target = (found.alpine if ecosystem == "Alpine:v3.11"
                      else found.pypi if ecosystem == "PyPI" else None)
            if target is None:
                continue
            versions = target.setdefault(str(package.get("name")), [])
            for span in affected.get("ranges", []):
                for event in span.get("events", []):
                    for key in ("introduced", "fixed"):
                        if event.get(key) and event[key] != "0":
                            versions.append(str(event[key]))
    for table in (found.alpine, found.pypi):
        for name in [name for name, versions in table.items() if not versions]:
            del table[name]
    return found


def weekly_indexes(records: list[dict[str, Any]], rng: random.Random
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Indexes A, B and C of the module docstring."""
    shares = [rng.random() for _ in records]
    index_a = [record for record, share in zip(records, shares, strict=True) if share >= 0.06]
    index_b = [record for record, share in zip(records, shares, strict=True) if share >= 0.01]
    index_c = []
    for record, share in zip(records, shares, strict=True):
        if 0.01 <= share < 0.015:
            # A modified record: OSV moves ``modified`` on; here an alias is added.
            record = {**record, "modified": "2099-01-01T00:00:00Z",
                      "aliases": [*record.get("aliases", []), f"BENCH-{record['id']}"]}
        if share >= 0.005:
            index_c.append(record)
    return index_a, index_b, index_c


def publish(store: Store, records: list[dict[str, Any]], folder: Path, name: str) -> None:
    path = folder / f"{name}.idx"
    write_index(compile_index(records, sources=[name]), path)
    publish_index(store.clients.blob_service(), path)


# ------------------------------------------------------------------------------- images


def inventory_packages(rng: random.Random, known: Catalogue, size: int) -> tuple[Package, ...]:
    alpine_names, pypi_names = sorted(known.alpine), sorted(known.pypi)
    packages = []
    for number in range(size):
        is_os = number % OS_SHARE == 0
        if rng.randrange(VULNERABLE_SHARE) == 0:
            table = known.alpine if is_os else known.pypi
            name = rng.choice(alpine_names if is_os else pypi_names)
            # The newest version the records mention is usually patched; older ones are not.
            versions = table[name]
            version = versions[-1] if rng.random() < 0.7 else rng.choice(versions)
        else:
            name = f"lib-{rng.randrange(5000)}"
            version = f"{rng.randrange(10)}.{rng.randrange(30)}.0" + ("-r0" if is_os else "")
        if is_os:
            packages.append(Package(type=PackageType.APK, name=name, version=version,
                                    purl=f"pkg:apk/alpine/{name}@{version}",
                                    path="lib/apk/db/installed", source_name=name,
                                    source_version=version, arch="x86_64"))
        else:
            packages.append(Package(type=PackageType.PYPI, name=name, version=version,
                                    purl=f"pkg:pypi/{name}@{version}",
                                    path=f"usr/lib/python3.8/site-packages/{name}.dist-info"))
    return tuple(packages)


def image_digest(number: int) -> str:
    return "sha256:" + hashlib.sha256(f"bench-image-{number}".encode()).hexdigest()


def image_repository(number: int) -> str:
    return f"team{number % 100}/app"


def image_registry(number: int) -> str:
    if REGISTRIES == 1:
        return REGISTRY
    return f"bench{number // REGISTRY_BLOCK % REGISTRIES:03d}.azurecr.io"


def image_reference(number: int) -> str:
    return f"{image_registry(number)}/{image_repository(number)}@{image_digest(number)}"


def image_row(number: int, now: datetime) -> dict[str, Any]:
    """The image row ``record_push`` and ``record_pull`` would have left."""
    rng = random.Random(number)
    digest = image_digest(number)
    repository = image_repository(number)
    row = new_image_row(image_registry(number), repository, digest)
    partition_key, row_key = image_keys(image_registry(number), repository, digest)
    row.update(PartitionKey=partition_key, RowKey=row_key,
               tags=json.dumps([f"build-{number}"]), first_pushed=now - timedelta(days=40),
               last_pushed=now - timedelta(days=40),
               last_pulled=now - timedelta(days=rng.randrange(1, 29)))
    return row


def pull_row(number: int, now: datetime) -> dict[str, Any]:
    rng = random.Random(number)
    digest = image_digest(number)
    at = now - timedelta(days=rng.randrange(1, 29))
    repository = image_repository(number)
    registry = image_registry(number)
    return {"PartitionKey": encode_key(registry), "RowKey": join_key(digest, repository),
            "registry": registry, "repository": repository, "digest": digest,
            "first_pulled": at, "last_pulled": at, "count": int64(1)}


def image_inventory(known: Catalogue, number: int, packages: int,
                    template: int) -> ImageInventory:
    """Image ``number``'s inventory: the packages and layer of image ``template`` (itself
    unless the image is a copy, see ``copy_images``)."""
    rng = random.Random(template)
    digest = image_digest(number)
    layer = LayerInfo(
        digest="sha256:" + hashlib.sha256(f"layer-{template}".encode()).hexdigest(), size=1000)
    return ImageInventory(
        reference=image_reference(number), image_digest=digest,
        manifest_digest=digest, config_digest=digest, platform=PLATFORM,
        analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
        os=ALPINE, packages=inventory_packages(rng, known, packages), layers=(layer,))


def write_inventory(services: Services, known: Catalogue, number: int, packages: int,
                    template: int) -> None:
    """Stores ``image_inventory`` as the image's inventory blob."""
    save_inventories(services, image_registry(number), image_digest(number),
                     (image_inventory(known, number, packages, template),))


def seed(services: Services, known: Catalogue, images: int, distinct: int, packages: int,
         now: datetime, workers: int) -> None:
    """Image rows and pulls of images ``0..images-1`` in 100-row transactions (grouped by
    partition), the inventories one blob each; image ``n`` has the packages of image
    ``n % distinct``."""
    store = services.store
    submit_batches(store.images.table,
                   ((TransactionOperation.UPSERT, image_row(number, now))
                    for number in range(images)), "seeding images")
    submit_batches(store.pulls.table,
                   ((TransactionOperation.UPSERT, pull_row(number, now))
                    for number in range(images)), "seeding pulls")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, _ in enumerate(pool.map(
                lambda number: write_inventory(services, known, number, packages,
                                               number % distinct),
                range(images)), start=1):
            if done % 1000 == 0:
                print(f"  wrote {done} inventories ({time.perf_counter() - started:.0f} s)",
                      flush=True)


# ------------------------------------------------------------------------------- copies
# At 100,000 images the first assessment of every image would take most of an hour here. The
# fast path assesses ``--distinct`` images for real (and ``PROBES`` more whose packages are
# those of distinct ones), then writes every other image as the copy of the assessed image with
# its packages: the row, inventory blob, pull and history record the real assessment would
# have stored, with the image's own digest, repository, tags and times. Before any copy is
# written, each probe's really assessed row and blob are compared with the copy made from its
# template: every column must be equal but the generation id (random by design).

PROBES = 16
COPY_ABOVE = 10_000  # by default, larger runs copy
DEFAULT_DISTINCT = 500
IDENTITY_COLUMNS = ("PartitionKey", "RowKey", "registry", "repository", "digest", "tags",
                    "first_pushed", "last_pushed", "last_pulled")
# Random per assessment (``new_generation``): the one column a copy cannot match.
UNCOMPARED_COLUMNS = ("current_generation",)


@dataclass(frozen=True, slots=True)
class Template:
    """A really assessed image: its row and inventory blob."""

    number: int
    row: dict[str, Any]
    inventory: bytes
    # Its match keys, decoded once for all its copies (None: unreadable), and the digest of
    # its inventory document, which they must name.
    keys: MatchKeys | None
    inventory_digest: str


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values with typed ones (Int64) unwrapped, for comparing."""
    return {name: value.value if isinstance(value, EntityProperty) else value
            for name, value in row.items()}


def read_template(store: Store, number: int) -> Template:
    partition_key, row_key = image_keys(image_registry(number), image_repository(number),
                                        image_digest(number))
    entity = read_entity(store.images.table, partition_key, row_key, "reading a template")
    if entity is None or not entity.get("status"):
        raise RuntimeError(f"image {number} was not assessed: it cannot be copied")
    if entity.get("findings_blob"):
        raise RuntimeError(f"image {number} keeps its findings in a blob: not copied")
    # Typed values (Int64) stay wrapped, so a copy is written with the same types.
    inventory = store.blobs.get_inventory(image_registry(number), image_digest(number))
    return Template(number=number, row={name: value for name, value in entity.items()
                                        if name != "Timestamp"},
                    inventory=inventory, keys=read_match_keys(bytes(entity["match_keys"])),
                    inventory_digest=inventory_digest(inventory))


def chunked(row: dict[str, Any], pattern: str, count: str) -> bytes:
    return b"".join(bytes(row[pattern.format(n)]) for n in range(int(row[count])))


def copy_image(template: Template, number: int, now: datetime,
               moment: datetime) -> tuple[dict[str, Any], bytes]:
    """Image ``number``'s row and inventory blob as the assessment at ``moment`` of its
    inventory (the template's, under ``number``'s digest) would have stored them."""
    def moved(data: bytes) -> bytes:
        return (data.replace(image_reference(template.number).encode(),
                             image_reference(number).encode())
                .replace(image_digest(template.number).encode(),
                         image_digest(number).encode())
                .replace(image_registry(template.number).encode(),
                         image_registry(number).encode()))

    source = template.row
    inventory = moved(template.inventory)
    document = moved(zstandard.ZstdDecompressor().decompress(
        chunked(source, DOCUMENT_COLUMN, "findings_doc_n")))
    encoded = EncodedFindings(
        document=compress_findings(document), keys=chunked(source, KEYS_COLUMN,
                                                          "findings_keys_n"),
        fingerprint=hashlib.sha256(document).hexdigest(), counts=FindingCounts(),
        total=int(source["findings_total"]))
    row = {name: moved(value.encode()).decode() if isinstance(value, str) else value
           for name, value in source.items()
           if not name.startswith(("findings_doc_", "findings_keys_", "inventory_"))}
    # The match keys name the inventory document they were listed from (its digest): the
    # copy's are the template's lookups, naming the copy's document.
    keys = template.keys
    if keys is None or keys.inventory != template.inventory_digest:
        raise RuntimeError(f"image {template.number}'s match keys do not name its inventory: "
                           "it cannot be copied")
    row["match_keys"] = encode_match_keys(keys.signed, inventory_digest(inventory))
    identity = image_row(number, now)
    row.update({name: identity[name] for name in IDENTITY_COLUMNS})
    row.update(findings_columns(encoded), **inventory_columns(inventory),
               last_scan_id=rescan_id(moment, image_registry(number), image_digest(number)),
               current_generation=new_generation())
    return row, inventory


def check_copies(store: Store, templates: list[Template], probes: range, now: datetime,
                 moment: datetime) -> str:
    """Compare each probe's real assessment with its copy; raise on the first difference."""
    for number in probes:
        real = read_template(store, number)
        row, inventory = copy_image(templates[number % len(templates)], number, now, moment)
        copied, assessed = plain(row), plain(real.row)
        differing = sorted(name for name in {*copied, *assessed}
                           if name not in UNCOMPARED_COLUMNS
                           and copied.get(name) != assessed.get(name))
        if differing or inventory != real.inventory:
            raise RuntimeError(f"copy of image {number} differs from its real assessment: "
                               f"columns {differing}, inventory blob equal: "
                               f"{inventory == real.inventory}")
    compared = len(set(row) - set(UNCOMPARED_COLUMNS))
    return (f"{len(probes)} copies equal their real assessment ({compared} columns and the "
            f"inventory blob compared; not {', '.join(UNCOMPARED_COLUMNS)})")


def upsert_rows(table: TableClient, operations: list[tuple[TransactionOperation, Any]],
                resets: Counter[str]) -> None:
    """One transaction of upserts, sent again when the connection drops (Azurite resets some
    under this load; the SDK does not retry a POST, and upserts are safe to repeat)."""
    for attempt in range(4):
        try:
            table.submit_transaction(operations)
            return
        except ServiceResponseError:
            if attempt == 3:
                raise
            resets["transactions sent again"] += 1


def copy_images(services: Services, templates: list[Template], numbers: range, now: datetime,
                moment: datetime, workers: int) -> None:
    """Write images ``numbers`` as copies: rows in 100-row transactions per partition (the
    registry's 16), pulls and history records batched, inventory blobs one by one."""
    store = services.store
    pending: list[Future[Any]] = []
    buffers: dict[str, list[tuple[TransactionOperation, dict[str, Any]]]] = {}
    started = time.perf_counter()

    def wait(limit: int) -> None:
        while len(pending) > limit:
            pending.pop(0).result()

    sizes: dict[str, int] = {}
    resets: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def send(partition: str) -> None:
            del sizes[partition]
            pending.append(pool.submit(upsert_rows, store.images.table,
                                       buffers.pop(partition), resets))

        for done, number in enumerate(numbers, start=1):
            row, inventory = copy_image(templates[number % len(templates)], number, now,
                                        moment)
            pending.append(pool.submit(store.blobs.put_inventory, image_registry(number),
                                       image_digest(number), inventory))
            partition = row["PartitionKey"]
            # The limits ImageTable.merge_rows keeps: 100 rows and 3 MiB of body.
            size = payload_size(row)
            if partition in buffers and (len(buffers[partition]) == MAX_BATCH
                                         or sizes[partition] + size > MAX_BATCH_BYTES):
                send(partition)
            buffers.setdefault(partition, []).append((TransactionOperation.UPSERT, row))
            sizes[partition] = sizes.get(partition, 0) + size
            if (number + 1) % REGISTRY_BLOCK == 0:
                # The block's registry gets no more images until the numbers come round again:
                # its rows go now. Kept until the end, as before, 100 registries' unfilled
                # transactions held every row (13 GB at 100,000 images, which with Azurite's
                # young generation at 512 MB semi-spaces ran the machine out of memory).
                for waiting in list(buffers):
                    send(waiting)
            wait(4 * workers)
            if done % 10_000 == 0:
                print(f"  copied {done} images ({time.perf_counter() - started:.0f} s, "
                      f"{resets['transactions sent again']} transactions sent again after a "
                      "connection reset)", flush=True)
        for waiting in list(buffers):
            send(waiting)
        wait(0)
    submit_batches(store.pulls.table, ((TransactionOperation.UPSERT, pull_row(number, now))
                                       for number in numbers), "seeding pulls")
    for start in range(numbers.start, numbers.stop, 10_000):
        store.scans.record_finished(
            ScanRecord(id=rescan_id(moment, image_registry(number), image_digest(number)),
                       registry=image_registry(number), repository=image_repository(number),
                       digest=image_digest(number), trigger=ScanTrigger.RESCAN, started=moment,
                       finished=now, outcome=AssessmentStatus(
                           templates[number % len(templates)].row["status"]))
            for number in range(start, min(start + 10_000, numbers.stop)))


# ------------------------------------------------------------------------------- measuring


class Meter:
    """Per-thread CPU seconds spent inside wrapped functions, and storage requests sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cpu: dict[str, float] = {}
        self.requests: Counter[str] = Counter()

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self.lock:
                    self.cpu[name] = self.cpu.get(name, 0.0) + spent
        return timed

    def count_requests(self) -> None:
        send = RequestsTransport.send

        def counted(transport: Any, request: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.requests[request.method] += 1
            return send(transport, request, **kwargs)

        RequestsTransport.send = counted

    def reset(self) -> None:
        with self.lock:
            self.cpu.clear()
            self.requests.clear()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> Iterator[int]:
    for child in Path(f"/proc/{pid}/task").iterdir():
        children = Path(f"/proc/{pid}/task/{child.name}/children")
        for text in children.read_text().split():
            yield int(text)
            yield from descendants(int(text))


def azurite_cpu(pid: int) -> float:
    return sum(process_cpu(each) for each in (pid, *descendants(pid)))


def storage_cpu(pids: tuple[int, ...]) -> float:
    """CPU seconds of the storage emulator's processes (Azurite, MariaDB) and their children."""
    return sum(azurite_cpu(pid) for pid in pids)


# ------------------------------------------------------------------------------- orchestration

# The goals for one chunk activity.
CHUNK_SECONDS_GOAL = 60
CHUNK_RSS_GOAL_MIB = 500

# The timed weeks, in the order they run (``--weeks`` picks some).
WEEKS = ("5pct", "1pct", "unchanged")

_worker_services: Services | None = None


def _start_worker(storage: StorageSettings, prefix: str) -> None:
    global _worker_services
    _worker_services = Services.open(Store(StorageClients(settings=storage), prefix))


def peak_rss_kib() -> int:
    """This process's own peak resident set (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``:
    Linux carries the parent's peak over an exec, so a worker spawned by a large parent would
    report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _worker_chunk(step: dict[str, Any]) -> tuple[dict[str, Any], float, int, int]:
    """One chunk activity in a worker: its result, wall seconds, the worker's peak RSS (KiB)
    and pid."""
    assert _worker_services is not None, "worker not started"
    started = time.perf_counter()
    result = fanout.rescan_planned_chunk(_worker_services, fanout.ChunkStep.from_json(step))
    return result.to_json(), time.perf_counter() - started, peak_rss_kib(), os.getpid()


@dataclass(slots=True)
class ChunkTimes:
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: dict[int, int] = field(default_factory=dict)  # per worker pid

    def within_goals(self) -> bool:
        """Every chunk under 60 s, every worker under 500 MB."""
        return (max(self.seconds, default=0.0) < CHUNK_SECONDS_GOAL
                and max(self.peak_rss_kib.values(), default=0) < CHUNK_RSS_GOAL_MIB * 1024)

    def summary(self) -> str:
        if not self.seconds:
            return "no chunks"
        ordered = sorted(self.seconds)
        def at(share: float) -> float:
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
        rss = sorted(self.peak_rss_kib.values())
        return (f"{len(ordered)} chunks: p50 {at(0.5):.1f} s, p95 {at(0.95):.1f} s, max "
                f"{ordered[-1]:.1f} s (goal < {CHUNK_SECONDS_GOAL} s); peak RSS per worker "
                f"{', '.join(f'{kib / 1024:.0f}' for kib in rss)} MB (goal < "
                f"{CHUNK_RSS_GOAL_MIB} MB)")


class Orchestrated:
    """The rescan orchestration on the local Durable runtime, chunks in worker processes."""

    def __init__(self, services: Services, processes: int, chunk_images: int) -> None:
        self.services = services
        self.chunk_images = chunk_images
        self.pool = ProcessPoolExecutor(
            max_workers=processes, initializer=_start_worker,
            initargs=(services.store.clients.settings, services.store.prefix),
            mp_context=multiprocessing.get_context("spawn"))
        self.times = ChunkTimes()
        app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
        app.register_functions(orchestration.bp)
        app.register_functions(rescans.bp)
        rescans.services = lambda: services
        index = index_app(app)
        activities = {item.name: Activity(name=item.name, function=user_callable(item),
                                          input_name=item.trigger_name)
                      for item in index.by_trigger(ACTIVITY_TRIGGER)}
        activities["rescan_chunk"] = Activity(name="rescan_chunk", function=self.chunk,
                                              input_name="step")
        self.runtime = DurableRuntime(
            orchestrators={item.name: Orchestrator(name=item.name, function=user_callable(item))
                           for item in index.by_trigger(ORCHESTRATION_TRIGGER)},
            activities=activities, max_workers=processes)

    def chunk(self, step: dict[str, Any]) -> dict[str, Any]:
        result, seconds, rss, pid = self.pool.submit(_worker_chunk, step).result()
        self.times.seconds.append(seconds)
        self.times.peak_rss_kib[pid] = max(rss, self.times.peak_rss_kib.get(pid, 0))
        return result

    def rescan(self, now: datetime) -> RescanReport:
        self.times = ChunkTimes()
        rescan_id = f"rescan-bench-{now:%Y%m%dT%H%M%S}"
        start = fanout.RescanStart(rescan_id=rescan_id, moment=now, window_days=30,
                                   chunk_images=self.chunk_images,
                                   purpose=f"rescan/{now:%Y-%m-%d}")
        self.runtime.start(rescans.RESCAN_ORCHESTRATOR, rescan_id, start.to_json())
        instance = self.runtime.wait(rescan_id)
        if instance.status is not df.OrchestrationRuntimeStatus.Completed:
            raise RuntimeError(f"rescan {rescan_id} ended {instance.status}: {instance.output}")
        total = instance.output  # finish_rescan's sums; re-analyses counted, none started
        return RescanReport(rematched=total["unaffected"] + total["matched"],
                            to_reanalyze=(), failed=total["failed"],
                            unaffected=total["unaffected"], matched=total["matched"],
                            rewritten=total["rewritten"])

    def close(self) -> None:
        self.runtime.close()
        self.pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------- main


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends the run as Ctrl-C does, through the ``finally`` blocks that stop Azurite,
    MariaDB and the workers: killed without them, they stayed behind with their memory."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--azurite-on-disk", action="store_true",
                        help="let Azurite persist to disk (it re-serialises its whole table "
                             "database on autosave: slower as the data grows)")
    parser.add_argument("--blob-metadata", choices=BLOB_METADATA, default="loki",
                        help="where Azurite keeps blob metadata: in memory (loki), or in a "
                             "private MariaDB server (mariadb: a blob found by key, not by "
                             "scanning every blob; needed past ~10,000 images, see "
                             "bench_storage.py)")
    parser.add_argument("--table-index", action="store_true",
                        help="preload bench/azurite_table_index.cjs into Azurite: a query that "
                             "pins the partition reads that partition, not the whole table, "
                             "as Azure's index does (needed to see how the app scales past "
                             "~10,000 images, see bench_storage.py)")
    parser.add_argument("--table-bodies", action="store_true",
                        help="preload bench/azurite_table_bodies.cjs into Azurite: its table "
                             "process sends and reads bodies as text, without a Buffer copy of "
                             "each, so its garbage collections stop growing as images x images "
                             "(see bench_storage.py)")
    parser.add_argument("--azurite-semi-space", type=int, default=SEMI_SPACE_MIB,
                        metavar="MIB",
                        help="the fixed size of each semi-space of Azurite's young generation "
                             f"(default {SEMI_SPACE_MIB}; 0: V8's own sizing, 16 MB at most; "
                             "see bench_storage.py)")
    parser.add_argument("--azurite-profile", type=Path, default=None, metavar="DIR",
                        help="write a CPU profile of Azurite for each timed week to DIR "
                             "(<week>-<pid>.cpuprofile, bench/azurite_profile.cjs) and print "
                             "where its CPU went (bench/azurite_profile.py)")
    parser.add_argument("--registries", type=int, default=1,
                        help="spread the images over this many registries, in blocks of "
                             f"{REGISTRY_BLOCK} (default 1: every image in {REGISTRY})")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes (default: the RESCAN_PROCESSES setting, 0 = "
                             "one per core)")
    parser.add_argument("--seed-workers", type=int, default=16)
    parser.add_argument("--mode", choices=("in-process", "orchestration"), default="in-process",
                        help="rescan_pulled in this process, or the rescan orchestration with "
                             "its chunk activities in --processes worker processes")
    parser.add_argument("--chunk-images", type=int, default=500,
                        help="images per chunk activity (orchestration mode)")
    parser.add_argument("--distinct", type=int, default=None,
                        help="images assessed for real; the others are copies of their rows "
                             f"(default: every image up to {COPY_ABOVE:,}, else "
                             f"{DEFAULT_DISTINCT})")
    parser.add_argument("--weeks", default=",".join(WEEKS),
                        help=f"the timed weeks, comma-separated, of {', '.join(WEEKS)} "
                             "(default: all three, in that order)")
    args = parser.parse_args()
    if args.registries < 1:
        parser.error("--registries: at least 1")
    global REGISTRIES
    REGISTRIES = args.registries
    chosen = {week.strip() for week in args.weeks.split(",") if week.strip()}
    if not chosen or not chosen <= set(WEEKS):
        parser.error(f"--weeks: a comma-separated subset of {', '.join(WEEKS)}")
    weeks = [week for week in WEEKS if week in chosen]
    # The seeding threads outnumber a client's 10 pooled connections: the extra ones are
    # opened and dropped, which urllib3 warns about once per request.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    distinct = args.distinct or (args.images if args.images <= COPY_ABOVE
                                 else DEFAULT_DISTINCT)
    # Images assessed for real: the distinct ones and, when there are copies, the probes.
    assessed = args.images if distinct >= args.images else min(args.images,
                                                                distinct + PROBES)
    if args.mode == "orchestration" and not args.processes:
        args.processes = os.cpu_count() or 1
    records, source = load_records()
    known = catalogue(records)
    index_a, index_b, index_c = weekly_indexes(records, random.Random(7))
    print(f"advisories: {len(records)} records from {source}; indexes A {len(index_a)}, "
          f"B {len(index_b)}, C {len(index_c)} records; {len(known.alpine)} Alpine and "
          f"{len(known.pypi)} PyPI packages named", flush=True)
    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="acr-scan-rescan-") as folder:
        azurite = start_storage(Path(folder), in_memory=not args.azurite_on_disk,
                                blob_metadata=args.blob_metadata,
                                table_index=args.table_index,
                                table_bodies=args.table_bodies,
                                profile=args.azurite_profile,
                                semi_space_mib=args.azurite_semi_space)
        profiler = (Profiler(args.azurite_profile, azurite.pids)
                    if args.azurite_profile is not None else None)
        try:
            store = Store.from_connection_string(azurite.connection_string, prefix="bench")
            services = Services.create(store)
            orchestrated = (Orchestrated(services, args.processes, args.chunk_images)
                            if args.mode == "orchestration" else None)

            def run(moment: datetime) -> RescanReport:
                if orchestrated is not None:
                    return orchestrated.rescan(moment)
                return rescan_pulled(services, now=moment, workers=args.workers,
                                     processes=args.processes)

            now = datetime.now(UTC)
            started = time.perf_counter()
            seed(services, known, assessed, distinct, args.packages, now, args.seed_workers)
            print(f"seeded {assessed} images x {args.packages} packages in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

            # Every image is first assessed against the index the first timed week follows.
            timeline = [("index-a", index_a), ("B", index_b), ("C", index_c), ("C", None)]
            first_name, first_index = timeline[WEEKS.index(weeks[0])]
            if first_index is None:
                first_name, first_index = timeline[WEEKS.index(weeks[0]) - 1]
            publish(store, first_index, Path(folder), first_name)
            services.index.invalidate()
            first_moment = now - timedelta(days=14)
            started = time.perf_counter()
            first = run(first_moment)
            print(f"first assessment (index {first_name}): {first.rematched} images in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            if orchestrated is not None:
                print(f"  {orchestrated.times.summary()}", flush=True)
            if assessed < args.images:
                templates = [read_template(store, number) for number in range(distinct)]
                print("copy self-check: " + check_copies(
                    store, templates, range(distinct, assessed), now, first_moment),
                      flush=True)
                started = time.perf_counter()
                copy_images(services, templates, range(assessed, args.images), now,
                            first_moment, args.seed_workers)
                print(f"copied {args.images - assessed} images from {distinct} assessed ones "
                      f"in {time.perf_counter() - started:.1f} s", flush=True)
                release_freed_memory()

            evaluation.match_inventory = meter.wrap(
                "matching", evaluation.match_inventory)
            rematch.parse_inventories = meter.wrap(
                "decoding inventories", rematch.parse_inventories)
            meter.count_requests()
            results: list[tuple[str, Measured]] = []
            chunks: dict[str, ChunkTimes] = {}
            for week, name, index, moment in (
                    ("5pct", "B: 5% of records new", index_b, now - timedelta(days=7)),
                    ("1pct", "C: 1% changed (0.5% new, 0.5% modified)", index_c, now),
                    ("unchanged", "C again: nothing changed", None,
                     now + timedelta(days=1))):
                if week not in weeks:
                    continue
                if index is not None:
                    publish(store, index, Path(folder), name[0])
                    services.index.invalidate()
                if profiler is not None:
                    profiler.start()
                results.append((name, measure(meter, azurite.pids, moment, run)))
                print(f"  measured {name}", flush=True)
                if profiler is not None:
                    for written in profiler.stop(week):
                        print(profile_report(written, 8), flush=True)
                if orchestrated is not None:
                    chunks[name] = orchestrated.times
            sample = store.images.list(page_size=1000).items
            findings = sum(image.counts.active_total + image.counts.disabled_total
                           for image in sample)
        finally:
            if orchestrated is not None:
                orchestrated.close()
            azurite.stop()
    print(f"weekly rescan ({args.mode}) of {args.images} images x {args.packages} packages "
          f"({distinct} distinct, the rest copies of their rows), {args.workers} workers, "
          f"{findings / max(1, len(sample)):.0f} findings per image; Azurite's table queries "
          f"{'by partition (--table-index)' if args.table_index else 'scan the table'}"
          f"{', bodies as text (--table-bodies)' if args.table_bodies else ''}, blob "
          f"metadata {args.blob_metadata}, semi-spaces {args.azurite_semi_space} MB:")
    for name, result in results:
        report = result.report
        print(f"  {name}: {result.wall:.1f} s wall (goal < 60 s for 10,000), "
              f"{result.wall / args.images * 1000:.1f} ms per image; {report.rematched} "
              f"re-assessed: {report.unaffected} unaffected (row only), {report.matched} "
              f"re-matched, {report.rewritten} with new findings; {report.failed} failed")
        print(f"    this process {result.cpu:.1f} CPU s = matching {result.matching:.1f} + "
              f"decoding inventories {result.reading:.1f} + storage client and the rest "
              f"{result.cpu - result.matching - result.reading:.1f}; worker processes "
              f"{result.children:.1f} CPU s; Azurite {result.azurite:.1f} CPU s")
        print(f"    storage requests {result.requests} "
              f"({result.requests / max(1, args.images):.1f} per image: {result.methods})")
        if name in chunks:
            print(f"    {chunks[name].summary()}")
    ok = all(result.wall < 60 * args.images / 10_000
             and result.report.rematched == args.images for _, result in results)
    ok = ok and all(times.within_goals() for times in chunks.values())
    return 0 if ok else 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    report: RescanReport
    wall: float
    cpu: float
    azurite: float
    matching: float
    reading: float
    requests: int
    methods: str
    children: float


def release_freed_memory() -> None:
    """Hand the memory the seeding threads freed back to the system (glibc keeps it in
    per-thread arenas: after copying 100,000 images this process held 13 GB, of which
    ``malloc_trim`` returned 12.5 GB, while Azurite's data and the workers need the room)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def live_children_cpu(excluded: tuple[int, ...]) -> dict[int, float]:
    """CPU seconds of this process's children that are still running (not reaped, so not in
    ``children_cpu``), by pid: the orchestration's worker pool lives through every week.
    ``excluded``: the storage emulator's processes."""
    found: dict[int, float] = {}
    for thread in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            for text in (thread / "children").read_text().split():
                if int(text) not in excluded:
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        found[int(text)] = process_cpu(int(text))
    return found


def workers_cpu(reaped_before: float, live_before: dict[int, float],
                excluded: tuple[int, ...]) -> float:
    """CPU seconds the child processes spent since ``reaped_before`` (``children_cpu``) and
    ``live_before`` (``live_children_cpu``) were read: those reaped since count in full
    (``getrusage``) less what they had spent before, those still running by their growth."""
    live_after = live_children_cpu(excluded)
    reaped = children_cpu() - reaped_before
    grown = sum(cpu - live_before.get(pid, 0.0) for pid, cpu in live_after.items())
    ended = sum(cpu for pid, cpu in live_before.items() if pid not in live_after)
    return reaped + grown - ended


def measure(meter: Meter, storage_pids: tuple[int, ...], now: datetime,
            run: Callable[[datetime], RescanReport]) -> Measured:
    """One timed rescan (``run``) with its CPU and request split. Matching, reading and
    request counts are of this process only: worker processes report their CPU in all
    (``children``, the storage emulator excluded)."""
    meter.reset()
    azurite_before = storage_cpu(storage_pids)
    children_before = children_cpu()
    live_before = live_children_cpu(storage_pids)
    cpu_before = time.process_time()
    started = time.perf_counter()
    report = run(now)
    wall = time.perf_counter() - started
    with meter.lock:
        methods = ", ".join(f"{method} {count}"
                            for method, count in sorted(meter.requests.items()))
        return Measured(report=report, wall=wall, cpu=time.process_time() - cpu_before,
                        azurite=storage_cpu(storage_pids) - azurite_before,
                        matching=meter.cpu.get("matching", 0.0),
                        reading=meter.cpu.get("decoding inventories", 0.0),
                        requests=sum(meter.requests.values()), methods=methods,
                        children=workers_cpu(children_before, live_before, storage_pids))


if __name__ == "__main__":
    raise SystemExit(main())
