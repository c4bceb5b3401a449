"""The storage a rescan bench runs against: Azurite in memory, and for runs past ~10,000 images
Azurite's blob service with its metadata in MariaDB (``--blob-metadata mariadb``).

Why the second form. Azurite's in-memory blob metadata store (LokiJS) narrows every blob lookup
by its first indexed field, the account, and scans the rest, so a PUT or GET costs O(blobs in
the account): uploading 35,000 blobs of 30 KB with 16 threads took 526 s on this machine
(2026-12-03), the last 5,000 costing Azurite 146 CPU s against 11 for the first 5,000. A
100,000-image run would spend hours in that scan, which Azure Blob Storage does not have.
Azurite's supported alternative keeps the blob metadata in MySQL or MariaDB (the ``AZURITE_DB``
setting of ``azurite-blob``), where a blob is found by its key: the same upload took ~6 s per
1,000 blobs from the first to the 30,000th. Blob contents then live in Azurite's extent files,
under a folder on ``/dev/shm`` when it exists (memory, like ``--inMemoryPersistence``). Tables
and the queue stay in the in-memory Azurite.

Azurite's table store has the same kind of cost. Its point reads and upserts find an entity
through its PartitionKey index, but every Query Entities runs the interpreted filter on every
entity of the table and sorts all the matches, once per page
(``LokiTableMetadataStore.queryTableEntities``): a key-range read of 62 rows cost Azurite 6.3
CPU ms against 10,000 rows and 31.9 against 100,000 (``bench/bench_table_index.py``). Each
chunk of a rescan reads its rows by key range, so a week is quadratic on Azurite; Azure Table
Storage serves the range from its index. ``table_index`` (``bench_rescan.py --table-index``)
preloads ``bench/azurite_table_index.cjs`` into Azurite, which keeps each table's rows in a map
(PartitionKey -> RowKey -> entity) in place of LokiJS's two sorted key indexes: a query whose
filter pins the partition reads that partition's rows from the map, and a page is picked with a
bounded heap instead of a full sort: 2.8 and 3.1 CPU ms (with the earlier form of the preload,
which read the partition through LokiJS's index). Point operations (reads, upserts, merges,
deletes) find their entity with ``findOne({PartitionKey, RowKey})``, which LokiJS narrows by
the first field's index and then scans: O(rows in the partition) each, and a weekly rescan
writes its history into 16 partitions; the preload looks the entity up in the map. Every new
row was spliced into both sorted indexes, and the rescan history's newest-first keys put each
one near their front, so each insert moved both whole indexes (O(rows in the table)): 0.107 ->
0.207 Azurite CPU ms per history row from 10,000 to 100,000 rows, 0.050 -> 0.047 with the map
(thirteenth session). A query that pins no partition (the rescan plan's paged listings of the
pull ledger and the image rows) ran the filter on every entity for every page, n * n / 1,000
evaluations for a table of n rows; the preload walks the table in key order from the
continuation and stops at the page's end. A merge made LokiJS scan each key index for the
entity's slot; the preload finds it by binary search and leaves it in place (the collections
that keep LokiJS's indexes). The same entities come back in the same order
(``tests/bench/test_azurite_table_index.py``). What stayed beyond linear was Azurite's garbage
collector, for a reason found in two steps.

First, each young-generation collection (scavenge) also pays ~4 ms per GB of old generation,
and Node kept the young generation at 16 MB semi-spaces at most: fixed 128 MB semi-spaces
(fourteenth session) turned the 1% week's 1,843 scavenges at 100,000 images (32.7 s) into 264
(7.7 s). Second, tracing what started each collection (``--trace-gc``, fifteenth session) showed
that the heap filling did not: V8 counts every ArrayBuffer's bytes as external memory and
starts a collection for each further 64 MB of it. 67 of the 68 scavenges of a 10,000-image run
were "external memory pressure", and so was the incremental marking of the mark-compacts, each
of which marks the whole table heap (3.5 GB at 100,000 images). So the collections were as many
as the bytes Azurite copied into Buffers, each cost more as the table grew, and a week's GC grew
as images x images. Of the ~2 GB of Buffers the table process made in a 10,000-image run, half
were response bodies (TableHandler's ``new BufferStream(Buffer.from(text))``) and a quarter the
``Buffer.concat`` of each batch request; the rest are the socket's own reads. ``table_bodies``
(``bench_rescan.py --table-bodies``) preloads ``bench/azurite_table_bodies.cjs``, which sends
those responses as strings (Node encodes them into memory V8 does not count) and decodes batch
bodies as they arrive; the bytes on the wire are the same
(``tests/bench/test_azurite_table_bodies.py``). External-pressure scavenges went from 67 (512 MB
semi-spaces, without it) to 22 (128 MB, with it) at 10,000 images. Over a whole
100,000-image run (seeding and both timed weeks) the table process's mark-compacts went from
112 to 18 and its CPU from 244 to 178 s (128 MB semi-spaces without the preload, 512 MB with
it); Azurite's CPU in the 1% week at 100,000 images went from 144.9 to 97.0-100.0 s, 9.2-10.3x
its 10,000-image figure against 13.9-15.1x before. The scavenges that remain are still mostly
started by external memory (384 of 436 in that run: the socket's reads). With the preload,
512 MB semi-spaces did no better than 128 (1% week at 100,000 images 236.6-237.6 s against
228.6 s), so the table process keeps fixed 128 MB semi-spaces (``SEMI_SPACE_MIB``,
``--azurite-semi-space``; 0 restores V8's sizing).

MariaDB (Debian ``mariadb-server``) runs as a private server on a free loopback port with its
data in the same temporary folder, without a binary log and without a flush per commit (a
bench, not a store of record).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from azurite_profile import LOADED as PROFILE_LOADED
from azurite_profile import PRELOAD as PROFILE_PRELOAD

from scanning.errors import ServiceError
from scanning.local.services import (
    LOOPBACK,
    AzuritePorts,
    azurite_binary,
    azurite_connection_string,
    free_port,
    spawn,
    start_azurite,
    stop_process,
    wait_for_ports,
)

BLOB_METADATA = ("loki", "mariadb")
TABLE_INDEX = Path(__file__).resolve().with_name("azurite_table_index.cjs")
# What the preload writes to Azurite's log once it has replaced the table store's methods.
TABLE_INDEX_LOADED = "acr-scan bench: Azurite table queries read the pinned partition"
TABLE_BODIES = Path(__file__).resolve().with_name("azurite_table_bodies.cjs")
TABLE_BODIES_LOADED = "acr-scan bench: Azurite table bodies are sent and read as text"
DATABASE = "azurite_blob"
# Azurite's table store keeps every entity in the Node heap: 100,000 image rows with their
# findings documents and inventory copies pass Node's default limit (~4 GB on this machine).
NODE_HEAP_MIB = 16_384
# Each young-generation collection (scavenge) of V8 also costs time in proportion to the old
# generation, ~4 ms per GB here (2026-12-05, `--trace-gc-nvp`: 4.5 ms a scavenge at 450 MB,
# 16.7 ms at 3.5 GB, of which the phases V8 names take ~2.3 ms at both sizes), and Node's
# young generation stays at 16 MB semi-spaces however busy Azurite is. Semi-spaces of this
# size, fixed (``--min-semi-space-size``, which NODE_OPTIONS refuses, so ``node`` gets it on
# its command line), leave the scavenges to the Buffers Azurite makes (``TABLE_BODIES``) and
# to its young generation filling: 128 MB made the 1% week's scavenges at 100,000 images 7x
# fewer; with ``TABLE_BODIES``, 512 MB did no better than 128 (fifteenth session).
SEMI_SPACE_MIB = 128


@dataclass(slots=True, kw_only=True)
class BenchStorage:
    """The running storage: its connection string, and the processes whose CPU is the
    emulator's (Azurite, and MariaDB when blob metadata lives there)."""

    connection_string: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    folders: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(process.pid for process in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        for folder in self.folders:
            folder.cleanup()


def memory_folder(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder in memory (``/dev/shm``) when the machine has one, else in /tmp."""
    shm = Path("/dev/shm")
    return tempfile.TemporaryDirectory(prefix=prefix,
                                       dir=shm if shm.is_dir() and os.access(shm, os.W_OK)
                                       else None)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise ServiceError(f"{name} is missing: --blob-metadata mariadb needs MariaDB "
                           "(apt-get install mariadb-server)")
    return found


def start_mariadb(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private MariaDB server on a free loopback port, its data under ``folder``, with the
    database Azurite's blob metadata goes in."""
    data = folder / "data"
    data.mkdir(parents=True)
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    installed = subprocess.run(
        [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
         "--auth-root-authentication-method=normal", "--skip-test-db", *run_as],
        capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        raise ServiceError(f"mariadb-install-db failed: {installed.stderr[-2000:]}")
    port = free_port()
    process = spawn([_binary("mariadbd"), "--no-defaults", f"--datadir={data}",
                     f"--bind-address={LOOPBACK}", f"--port={port}",
                     f"--socket={folder / 'mariadb.sock'}", f"--pid-file={folder / 'pid'}",
                     "--skip-log-bin", "--innodb-buffer-pool-size=1G",
                     "--innodb-flush-log-at-trx-commit=0", "--max-connections=500", *run_as],
                    folder / "mariadb.log")
    wait_for_ports((port,), process, "MariaDB", timeout=60.0)
    created = subprocess.run(
        [_binary("mariadb"), "--no-defaults", f"--host={LOOPBACK}", f"--port={port}",
         "--user=root", "-e", f"CREATE DATABASE {DATABASE}"],
        capture_output=True, text=True, check=False)
    if created.returncode != 0:
        stop_process(process)
        raise ServiceError(f"creating the {DATABASE} database failed: {created.stderr}")
    return process, port


def node_environment(*, table_index: bool = False, table_bodies: bool = False,
                     profile: Path | None = None) -> dict[str, str]:
    """The environment Azurite's processes start with: a heap for 100,000 images' rows and,
    with ``table_index``, the partition index for its table queries preloaded; with
    ``table_bodies``, its table bodies sent and read as text (``azurite_table_bodies.cjs``);
    with ``profile``, the profiler (``azurite_profile``) writing there."""
    options = [os.environ.get("NODE_OPTIONS", ""), f"--max-old-space-size={NODE_HEAP_MIB}"]
    extra: dict[str, str] = {}
    if table_index:
        options.append(f'--require "{TABLE_INDEX}"')
    if table_bodies:
        options.append(f'--require "{TABLE_BODIES}"')
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        options.append(f'--require "{PROFILE_PRELOAD}"')
        extra["AZURITE_PROFILE_DIR"] = str(profile)
    return dict(os.environ, NODE_OPTIONS=" ".join(option for option in options if option),
                **extra)


def start_storage(folder: Path, *, in_memory: bool = True, blob_metadata: str = "loki",
                  table_index: bool = False, table_bodies: bool = False,
                  profile: Path | None = None,
                  semi_space_mib: int = SEMI_SPACE_MIB) -> BenchStorage:
    """Azurite on free loopback ports (``folder`` for its data and logs); with
    ``blob_metadata="mariadb"`` the blob endpoint is ``azurite-blob`` over MariaDB instead;
    with ``table_index`` Azurite's partition queries read the partition only; with
    ``table_bodies`` its table process sends and reads bodies as text; with
    ``profile`` its processes write CPU profiles there on request (``azurite_profile``);
    the table process's young generation has fixed semi-spaces of ``semi_space_mib`` (0: V8's
    own sizing)."""
    if blob_metadata not in BLOB_METADATA:
        raise ValueError(f"blob_metadata: one of {BLOB_METADATA}, not {blob_metadata!r}")
    environment = node_environment(table_index=table_index, table_bodies=table_bodies,
                                   profile=profile)
    ports = AzuritePorts.free()
    young = ([f"--min-semi-space-size={semi_space_mib}",
              f"--max-semi-space-size={semi_space_mib}"] if semi_space_mib > 0 else [])
    azurite = start_azurite(folder / "azurite", ports, in_memory=in_memory, env=environment,
                            node_flags=young)
    storage = BenchStorage(connection_string=azurite.connection_string,
                           processes=[azurite.process])
    log = (azurite.data_dir / "azurite.log").read_text(errors="replace")
    # A preload that finds nothing to replace in another Azurite layout would leave a run
    # reporting figures as indexed (or profiled) that were not.
    for wanted, loaded, preload in ((table_index, TABLE_INDEX_LOADED, TABLE_INDEX),
                                    (table_bodies, TABLE_BODIES_LOADED, TABLE_BODIES),
                                    (profile is not None, PROFILE_LOADED, PROFILE_PRELOAD)):
        if wanted and loaded not in log:
            storage.stop()
            raise ServiceError(f"{preload.name} was not applied to Azurite (see "
                               f"{azurite.data_dir / 'azurite.log'})")
    if blob_metadata == "loki":
        return storage
    try:
        memory = memory_folder("acr-scan-bench-blob-")
        storage.folders.append(memory)
        database, port = start_mariadb(Path(memory.name) / "mariadb")
        storage.processes.append(database)
        blob_port = free_port()
        blob_folder = Path(memory.name) / "azurite-blob"
        blob_folder.mkdir()
        blob = spawn([str(azurite_binary().with_name("azurite-blob")), "--silent",
                      "--skipApiVersionCheck", "--disableTelemetry", "--location",
                      str(blob_folder), "--blobHost", LOOPBACK, "--blobPort", str(blob_port)],
                     folder / "azurite-blob.log",
                     env=dict(environment,
                              AZURITE_DB=f"mysql://root:@{LOOPBACK}:{port}/{DATABASE}"))
        storage.processes.append(blob)
        wait_for_ports((blob_port,), blob, "azurite-blob over MariaDB", timeout=60.0)
    except BaseException:
        storage.stop()
        raise
    storage.connection_string = azurite_connection_string(
        AzuritePorts(blob=blob_port, queue=ports.queue, table=ports.table))
    return storage
