"""The images table (one row per registry + repository + digest) and the tag history table.

An image is a digest *in a repository*: the same digest copied to a second repository (a
dev → prod promotion, an ``az acr import`` within the registry) is a second image, with its own
tags, pushes, pulls, deletion, status and findings. Both share the analysis made once per
digest (the inventory blob and the layer cache) and one billing record.

images: PartitionKey ``encode_key(registry) | <shard>``, RowKey ``join_key(digest,
repository)``, where the shard is the first hex digit of the digest's hash: a registry's images
spread over 16 partitions (a partition serves ~2,000 entities/s in Azure, and Azurite scans a
whole partition for every point operation), listing one registry is one key-range query that
still returns its images in digest order, and the repositories of one digest are one key-range
query in one partition. Besides what the image is (repository, tags, platforms, media
type, size, push/pull times, deleted flag) the row carries the latest assessment (status,
reason, counts per severity active and disabled as ``active_<severity>``/``disabled_<severity>``
Int32 columns so they can be filtered on, analyzer and index versions, the generation id
``current_generation`` of that assessment) and the assessment's findings themselves, as a
compressed document in binary columns or a blob (``findings`` describes the layout). Queries
that list images read only the summary columns (``SUMMARY_COLUMNS``), never the documents.

tags: PartitionKey ``join_key(registry, repository)``, RowKey ``join_key(tag) | <inverted
time>``: each push of a tag appends a row saying which digest the tag pointed to when, newest
first. A tag that moves to a new digest is removed from the old image's ``tags``; the old image
row and its results stay (it can still be pulled by digest) and the history shows the move.

Updates to an image row are read-modify-write with an ETag condition, retried on conflict,
so concurrent events never lose each other's changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import zstandard
from azure.core import MatchConditions
from azure.data.tables import (
    EntityProperty,
    TableClient,
    TableEntity,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from scanning.errors import BadRequest, NotFound, StoreError
from scanning.model import (
    AssessmentStatus,
    FindingCounts,
    OSInfo,
    ScanState,
    ScanTrigger,
    Severity,
)
from scanning.store import transactions
from scanning.store.entities import (
    MAX_BATCH,
    as_datetime,
    as_int,
    as_str,
    bounded_json_list,
    etag_of,
    inflate,
    int64,
    json_list,
    modify_entity,
    read_entity,
    storage_errors,
    utc,
)
from scanning.store.keys import SEPARATOR, SEPARATOR_END, encode_key, join_key
from scanning.store.paging import Page, query_page
from scanning.store.queries import query_entities

log = logging.getLogger(__name__)

_MAX_MICROS = 10**19 - 1


def count_column(kind: str, severity: Severity) -> str:
    """``active_high``, ``disabled_critical``…: one Int32 column per kind and severity."""
    return f"{kind}_{severity.value}"


SHARDS = "0123456789abcdef"


def image_shard(digest: str) -> str:
    """The first hex digit of the digest's hash (``sha256:3f…`` -> ``3``); for anything else, of
    the SHA-256 of the text, so odd input still lands in one of the 16 shards."""
    _, _, encoded = digest.partition(":")
    first = encoded[:1].lower()
    return first if first and first in SHARDS else hashlib.sha256(digest.encode()).hexdigest()[0]


def image_partition(registry: str, digest: str) -> str:
    return f"{encode_key(registry)}{SEPARATOR}{image_shard(digest)}"


def image_keys(registry: str, repository: str, digest: str) -> tuple[str, str]:
    return image_partition(registry, digest), join_key(digest, repository)


def inverted_time(moment: datetime) -> str:
    """Row-key text that sorts newest first (fixed width, so string order is time order)."""
    micros = int(utc(moment).timestamp() * 1_000_000)
    return f"{_MAX_MICROS - micros:019d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformDetail:
    """One assessed platform of an image: its manifest and detected OS."""

    platform: str
    manifest_digest: str = ""
    os: OSInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFindings:
    """Where the row keeps its findings (``scanning.store.findings`` writes and reads them):
    ``document_chunks`` binary columns or the blob ``blob``; the query keys in
    ``keys_chunks`` columns (``keys``: those columns joined, when the read selected them) or,
    when ``keys_external``, only inside the document."""

    total: int = 0
    document_chunks: int = 0
    blob: str = ""
    keys_chunks: int = 0
    keys_external: bool = False
    keys: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRecord:
    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    media_type: str = ""
    size_bytes: int = 0
    first_pushed: datetime | None = None
    last_pushed: datetime | None = None
    last_pulled: datetime | None = None
    status: AssessmentStatus | None = None  # None until the first assessment
    # Set while a scan is queued or running; an assessment clears it (``FindingStore.save``).
    scan_state: ScanState | None = None
    # What the scan itself concluded before disable rules (partial, failed…); see
    # scanning.rules.assessment_status.
    analysis_status: AssessmentStatus | None = None
    reason: str = ""
    counts: FindingCounts = field(default_factory=FindingCounts)
    analyzer_version: str = ""
    index_version: str = ""
    # The code that matched its inventory (``scanning.matcher_version``); "" when none did.
    matcher_version: str = ""
    assessed_at: datetime | None = None
    last_scan_id: str = ""
    first_scan_trigger: ScanTrigger | None = None
    deleted: bool = False
    deleted_at: datetime | None = None
    current_generation: str = ""
    platform_details: tuple[PlatformDetail, ...] = ()
    findings_fingerprint: str = ""
    # Storage detail, read only by the reads that need it (``RESCAN_COLUMNS``), so not part
    # of what makes two records of one image equal. What the weekly rescan needs to tell,
    # without the inventory, whether a changed index changes this image's findings
    # (``encode_match_keys``); b"" when unknown or not read:
    match_keys: bytes = field(default=b"", compare=False)
    stored_findings: StoredFindings = field(default_factory=StoredFindings, compare=False)
    inventory_chunks: int = field(default=0, compare=False)  # the row's inventory copy


@dataclass(frozen=True, slots=True, kw_only=True)
class RowUpdate:
    """A merge of ``changes`` into one image row, as it was when read (``etag``).

    When the row changed since (a pull moved ``last_pulled``), the update still applies if the
    properties in ``expected`` hold the same values: a new assessment changes them.
    """

    registry: str
    repository: str
    digest: str
    etag: str
    changes: Mapping[str, Any]
    expected: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TagEvent:
    """``tag`` of ``repository`` pointed to ``digest`` from ``at`` on."""

    registry: str
    repository: str
    tag: str
    digest: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFilter:
    """``severity``: images with at least one active finding at or above it."""

    registry: str = ""
    repository: str = ""
    status: AssessmentStatus | None = None
    # Images not assessed yet whose scan is in this state.
    scan_state: ScanState | None = None
    severity: Severity | None = None
    include_deleted: bool = False


def counts_from_entity(entity: Mapping[str, Any]) -> FindingCounts:
    return FindingCounts(
        active={sev: as_int(entity.get(count_column("active", sev))) for sev in Severity},
        disabled={sev: as_int(entity.get(count_column("disabled", sev))) for sev in Severity},
    )


def counts_to_entity(counts: FindingCounts) -> dict[str, int]:
    columns = {}
    for severity in Severity:
        columns[count_column("active", severity)] = counts.active.get(severity, 0)
        columns[count_column("disabled", severity)] = counts.disabled.get(severity, 0)
    return columns


def platform_details_to_json(details: tuple[PlatformDetail, ...]) -> str:
    return bounded_json_list(
        {"platform": detail.platform, "manifest_digest": detail.manifest_digest,
         "os": None if detail.os is None else {
             "id": detail.os.id, "version_id": detail.os.version_id,
             "codename": detail.os.codename, "pretty_name": detail.os.pretty_name}}
        for detail in details
    )


def platform_details_from_json(value: object) -> tuple[PlatformDetail, ...]:
    details = []
    for item in json_list(value):
        os_data = item.get("os")
        details.append(PlatformDetail(
            platform=item["platform"], manifest_digest=item.get("manifest_digest", ""),
            os=OSInfo(**os_data) if isinstance(os_data, dict) else None,
        ))
    return tuple(details)


def image_from_entity(entity: Mapping[str, Any]) -> ImageRecord:
    status = as_str(entity.get("status"))
    scan_state = as_str(entity.get("scan_state"))
    analysis = as_str(entity.get("analysis_status"))
    trigger = as_str(entity.get("first_scan_trigger"))
    try:
        return ImageRecord(
            registry=as_str(entity["registry"]),
            repository=as_str(entity["repository"]),
            digest=as_str(entity["digest"]),
            tags=tuple(json_list(entity.get("tags"))),
            platforms=tuple(json_list(entity.get("platforms"))),
            media_type=as_str(entity.get("media_type")),
            size_bytes=as_int(entity.get("size_bytes")),
            first_pushed=as_datetime(entity.get("first_pushed")),
            last_pushed=as_datetime(entity.get("last_pushed")),
            last_pulled=as_datetime(entity.get("last_pulled")),
            status=AssessmentStatus(status) if status else None,
            scan_state=ScanState(scan_state) if scan_state else None,
            analysis_status=AssessmentStatus(analysis) if analysis else None,
            reason=as_str(entity.get("reason")),
            counts=counts_from_entity(entity),
            analyzer_version=as_str(entity.get("analyzer_version")),
            index_version=as_str(entity.get("index_version")),
            matcher_version=as_str(entity.get("matcher_version")),
            assessed_at=as_datetime(entity.get("assessed_at")),
            last_scan_id=as_str(entity.get("last_scan_id")),
            first_scan_trigger=ScanTrigger(trigger) if trigger else None,
            deleted=bool(entity.get("deleted", False)),
            deleted_at=as_datetime(entity.get("deleted_at")),
            current_generation=as_str(entity.get("current_generation")),
            platform_details=platform_details_from_json(entity.get("platform_details")),
            match_keys=as_bytes(entity.get("match_keys")),
            findings_fingerprint=as_str(entity.get("findings_fingerprint")),
            stored_findings=stored_findings_from_entity(entity),
            inventory_chunks=min(as_int(entity.get("inventory_n")), MAX_INVENTORY_CHUNKS),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StoreError(f"image row {entity.get('RowKey')!r} is malformed: {error}") from error


# Binary columns of the findings document and of its query keys (``findings``): at most
# ``MAX_CHUNKS`` in all on one row, each at most ``CHUNK`` bytes.
DOCUMENT_COLUMN = "findings_doc_{}"
KEYS_COLUMN = "findings_keys_{}"
CHUNK = 64_000
MAX_CHUNKS = 9
MAX_KEYS_CHUNKS = 4
# A copy of the image's inventory document (zstd), so a rescan reads the inventories of a
# chunk of images with one table query instead of a blob read each; larger inventories are
# read from their blob only. With the findings, at most 11 x 64,000 bytes of a 1 MiB row.
INVENTORY_COLUMN = "inventory_{}"
MAX_INVENTORY_CHUNKS = 2
MAX_INVENTORY_COPY_BYTES = 64 * 1024 * 1024

SUMMARY_COLUMNS: tuple[str, ...] = (
    "PartitionKey", "RowKey", "registry", "repository", "digest", "tags", "platforms",
    "media_type", "size_bytes", "first_pushed", "last_pushed", "last_pulled", "status",
    "scan_state",
    "analysis_status", "reason", *(count_column(kind, severity) for kind in ("active", "disabled")
                                   for severity in Severity),
    "analyzer_version", "index_version", "matcher_version", "assessed_at", "last_scan_id",
    "first_scan_trigger", "deleted", "deleted_at", "current_generation", "platform_details",
    "findings_fingerprint", "findings_total", "findings_doc_n", "findings_blob", "findings_keys_n",
    "findings_keys_external", "inventory_n",
)
KEYS_COLUMNS: tuple[str, ...] = tuple(KEYS_COLUMN.format(n) for n in range(MAX_KEYS_CHUNKS))
# What the weekly rescan reads of every image: the summary, the match keys, the query keys
# (for the previous assessment's notification summary); still never the documents.
RESCAN_COLUMNS: tuple[str, ...] = (*SUMMARY_COLUMNS, "match_keys", *KEYS_COLUMNS)
# ``rows_with_etags`` reads a partition's key range while it holds at most this many rows
# per image asked for; past that it reads the images left one by one.
SPARSE_RANGE = 4


def stored_findings_from_entity(entity: Mapping[str, Any]) -> StoredFindings:
    keys_chunks = min(as_int(entity.get("findings_keys_n")), MAX_KEYS_CHUNKS)
    return StoredFindings(
        total=as_int(entity.get("findings_total")),
        document_chunks=min(as_int(entity.get("findings_doc_n")), MAX_CHUNKS),
        blob=as_str(entity.get("findings_blob")),
        keys_chunks=keys_chunks,
        keys_external=bool(entity.get("findings_keys_external", False)),
        keys=b"".join(as_bytes(entity.get(KEYS_COLUMN.format(n))) for n in range(keys_chunks)),
    )


def inventory_columns(document: bytes, previous_chunks: int = 0) -> dict[str, Any]:
    """The columns of an inventory copy (``document``: the inventory blob's bytes); none
    (``inventory_n`` 0) when it is too large for the row. Columns the previous copy used and
    this one does not are emptied (for a merge)."""
    data = zstandard.ZstdCompressor(level=3).compress(document)
    chunks = [data[start:start + CHUNK] for start in range(0, len(data), CHUNK)]
    if len(chunks) > MAX_INVENTORY_CHUNKS:
        chunks = []
    columns: dict[str, Any] = {"inventory_n": len(chunks)}
    columns.update((INVENTORY_COLUMN.format(n), chunk) for n, chunk in enumerate(chunks))
    columns.update((INVENTORY_COLUMN.format(n), b"")
                   for n in range(len(chunks), previous_chunks))
    return columns


def as_bytes(value: object) -> bytes:
    if isinstance(value, EntityProperty):
        value = value.value
    return bytes(value) if isinstance(value, bytes | bytearray) else b""


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReport:
    applied: tuple[RowUpdate, ...]
    dropped: tuple[RowUpdate, ...]  # a newer assessment was stored meanwhile


# A transaction's request body may hold at most 4 MiB; binary values travel as base64.
MAX_BATCH_BYTES = 3 * 1024 * 1024


def _payload_size(changes: Mapping[str, Any]) -> int:
    size = 512
    for name, value in changes.items():
        if isinstance(value, EntityProperty):
            value = value.value
        size += len(name) + 32 + (len(value) * 4 // 3 + 4 if isinstance(value, bytes | bytearray)
                                  else len(value) * 2 if isinstance(value, str) else 16)
    return size


def _batches(updates: list[RowUpdate]) -> Iterator[list[RowUpdate]]:
    """Consecutive runs of at most ``MAX_BATCH`` updates and ``MAX_BATCH_BYTES``."""
    batch: list[RowUpdate] = []
    size = 0
    for update in updates:
        update_size = _payload_size(update.changes)
        if batch and (len(batch) == MAX_BATCH or size + update_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(update)
        size += update_size
    if batch:
        yield batch


class _Conflict(Exception):
    """A batch of row updates met a row changed since it was read."""


ImageKey = tuple[str, str, str]  # (registry, repository, digest)


def image_key(image: ImageRecord) -> ImageKey:
    return (image.registry, image.repository, image.digest)


class ImageTable:
    """Images and their tag history. Build through ``scanning.store.Store``."""

    def __init__(self, images: TableClient, tags: TableClient) -> None:
        self.table = images
        self.tags_table = tags

    # ------------------------------------------------------------ reads

    def find(self, registry: str, repository: str, digest: str) -> ImageRecord | None:
        entity = self.entity(registry, repository, digest)
        return image_from_entity(entity) if entity is not None else None

    def get(self, registry: str, repository: str, digest: str) -> ImageRecord:
        record = self.find(registry, repository, digest)
        if record is None:
            raise NotFound(f"no image {digest} in {registry}/{repository}")
        return record

    def entity(self, registry: str, repository: str, digest: str) -> TableEntity | None:
        """The raw image row (None when absent)."""
        partition_key, row_key = image_keys(registry, repository, digest)
        return read_entity(self.table, partition_key, row_key, f"reading image {digest}")

    def repositories_of(self, registry: str, digest: str) -> tuple[ImageRecord, ...]:
        """The images of ``digest`` in every repository of ``registry``: one key-range query
        in one partition."""
        low = encode_key(digest) + SEPARATOR
        with storage_errors(f"finding image {digest}"):
            entities = list(self.table.query_entities(
                "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
                parameters={"pk": image_partition(registry, digest), "low": low,
                            "high": encode_key(digest) + SEPARATOR_END},
                select=list(SUMMARY_COLUMNS)))
        return tuple(image_from_entity(entity) for entity in entities)

    def find_by_digest(self, digest: str) -> tuple[ImageRecord, ...]:
        """Every registry's and repository's row for ``digest`` (a digest alone may be
        ambiguous).

        A cross-partition query on RowKey: the service scans the table, fine for the API's
        occasional lookups, not for jobs (they know the registry and repository).
        """
        with storage_errors(f"finding image {digest}"):
            entities = list(self.table.query_entities(
                "RowKey gt @low and RowKey lt @high",
                parameters={"low": encode_key(digest) + SEPARATOR,
                            "high": encode_key(digest) + SEPARATOR_END},
                select=list(SUMMARY_COLUMNS)))
        return tuple(image_from_entity(entity) for entity in entities)

    def list(self, filters: ImageFilter = ImageFilter(), page_size: int = 100,
             token: str | None = None) -> Page[ImageRecord]:
        """One page of images matching ``filters``, in registry then digest order."""
        query_filter, parameters = image_query(filters)
        return query_page(
            self.table, query_filter=query_filter, parameters=parameters,
            page_size=page_size, token=token, convert=image_from_entity, operation="listing images",
            select=SUMMARY_COLUMNS,
        )

    def iter_with_etags(self, filters: ImageFilter = ImageFilter(),
                        columns: tuple[str, ...] = RESCAN_COLUMNS
                        ) -> Iterator[tuple[ImageRecord, str]]:
        """Every matching image with its row's ETag: one paged query (1,000 rows a page) of
        ``columns`` (by default what the weekly rescan needs)."""
        query_filter, parameters = image_query(filters)
        with storage_errors("listing images"):
            entities = query_entities(
                self.table, query_filter or "PartitionKey ne ''", parameters=parameters,
                results_per_page=1000, select=columns)
            for entity in entities:
                yield image_from_entity(entity), etag_of(entity)

    def iter_all(self, filters: ImageFilter = ImageFilter()) -> Iterator[ImageRecord]:
        """Every matching image, following the pages (for jobs, not for HTTP)."""
        token: str | None = None
        while True:
            page = self.list(filters, page_size=1000, token=token)
            yield from page.items
            if page.next_token is None:
                return
            token = page.next_token

    def rows_with_etags(self, images: Iterable[ImageKey],
                        columns: tuple[str, ...] = RESCAN_COLUMNS
                        ) -> dict[ImageKey, tuple[ImageRecord, str]]:
        """The rows (``columns``) of the ``(registry, repository, digest)`` images that exist
        and are not deleted, with their ETags: one key-range query per partition the images
        fall in, as long as the range holds at most ``SPARSE_RANGE`` rows per image asked
        for; the images of a sparser range (most of its rows not asked for) are read one by
        one instead, so a chunk never reads more than a few rows per image it wants."""
        wanted: dict[str, dict[str, ImageKey]] = {}
        for key in images:
            partition_key, row_key = image_keys(*key)
            wanted.setdefault(partition_key, {})[row_key] = key
        found: dict[ImageKey, tuple[ImageRecord, str]] = {}
        for partition_key, row_keys in wanted.items():
            left = dict(row_keys)
            budget = SPARSE_RANGE * len(row_keys)
            with storage_errors("reading image rows"):
                entities = query_entities(
                    self.table, "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition_key, "low": min(row_keys),
                                "high": max(row_keys)},
                    results_per_page=1000, select=columns)
                for scanned, entity in enumerate(entities, start=1):
                    row_key = as_str(entity.get("RowKey"))
                    if row_key in left:
                        key = left.pop(row_key)
                        image = image_from_entity(entity)
                        if not image.deleted:
                            found[key] = (image, etag_of(entity))
                    if not left or scanned >= budget:
                        break
            for row_key, key in left.items():
                row = read_entity(self.table, partition_key, row_key, f"reading image {key[2]}")
                if row is not None:
                    image = image_from_entity(row)
                    if not image.deleted:
                        found[key] = (image, etag_of(row))
        return found

    def inventory_copies(self, images: Iterable[ImageKey]) -> dict[ImageKey, bytes]:
        """The inventory copies of the ``(registry, repository, digest)`` images that have
        one, as the blob's bytes: one key-range query per partition the images fall in."""
        wanted: dict[str, set[str]] = {}
        for registry, repository, digest in images:
            partition_key, row_key = image_keys(registry, repository, digest)
            wanted.setdefault(partition_key, set()).add(row_key)
        copies: dict[ImageKey, bytes] = {}
        columns = ["PartitionKey", "RowKey", "registry", "repository", "digest", "inventory_n",
                   *(INVENTORY_COLUMN.format(n) for n in range(MAX_INVENTORY_CHUNKS))]
        for partition_key, row_keys in wanted.items():
            with storage_errors("reading inventory copies"):
                entities = list(query_entities(
                    self.table, "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition_key, "low": min(row_keys),
                                "high": max(row_keys)}, select=columns))
            for entity in entities:
                if entity.get("RowKey") not in row_keys:
                    continue
                chunks = min(as_int(entity.get("inventory_n")), MAX_INVENTORY_CHUNKS)
                data = b"".join(as_bytes(entity.get(INVENTORY_COLUMN.format(n)))
                                for n in range(chunks))
                if not data:
                    continue
                key = (as_str(entity.get("registry")), as_str(entity.get("repository")),
                       as_str(entity.get("digest")))
                try:
                    copies[key] = inflate(data, MAX_INVENTORY_COPY_BYTES,
                                          f"inventory copy of {key[2]}")
                except StoreError as error:
                    log.warning("%s: its blob is read instead", error)
        return copies

    # ------------------------------------------------------------ writes

    def modify(
        self, registry: str, repository: str, digest: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        operation: str,
    ) -> ImageRecord | None:
        """Read-modify-write the image row (see ``entities.modify_entity``)."""
        partition_key, row_key = image_keys(registry, repository, digest)
        row = modify_entity(self.table, partition_key, row_key, change, operation)
        return image_from_entity(row) if row is not None else None

    def record_push(
        self, *, registry: str, repository: str, digest: str, at: datetime, tag: str = "",
        media_type: str = "", platforms: tuple[str, ...] = (), size_bytes: int = 0,
        scan_state: ScanState | None = None, pushed: bool = True,
    ) -> ImageRecord:
        """Create or update the image for a push (or import) of ``digest``, and its tag;
        ``scan_state`` when the push starts a scan. ``pushed`` False: not a push (a scan asked
        for through the API), so the push times stay as they are (none for an image first
        seen that way: when it was pushed is not known).

        A push of a deleted digest brings it back. Pushing the same event twice is harmless.
        """
        if not registry or not repository or not digest:
            raise BadRequest("registry, repository and digest are required")
        moment = utc(at)

        def change(row: dict[str, Any] | None) -> dict[str, Any]:
            row = row or new_image_row(registry, repository, digest)
            if pushed:
                first = as_datetime(row.get("first_pushed"))
                last = as_datetime(row.get("last_pushed"))
                row["first_pushed"] = min(first, moment) if first else moment
                row["last_pushed"] = max(last, moment) if last else moment
            if media_type:
                row["media_type"] = media_type
            if platforms:
                row["platforms"] = json.dumps(list(platforms))
            if size_bytes:
                row["size_bytes"] = int64(size_bytes)
            if scan_state is not None:
                row["scan_state"] = scan_state.value
            if tag:
                tags = json_list(row.get("tags"))
                if tag not in tags:
                    row["tags"] = bounded_json_list(sorted([*tags, tag]))
            row["deleted"] = False
            row.pop("deleted_at", None)
            return row

        record = self.modify(registry, repository, digest, change,
                             f"recording push of {digest}")
        assert record is not None
        if tag:
            self._record_tag(registry, repository, tag, digest, moment)
        return self.get(registry, repository, digest) if tag else record

    def _record_tag(self, registry: str, repository: str, tag: str, digest: str,
                    at: datetime) -> None:
        previous = self.tag_history(registry, repository, tag)
        if previous and previous[0].digest == digest:
            return  # the same push delivered again: the tag did not move
        partition_key = join_key(registry, repository)
        with storage_errors(f"recording tag {tag} of {repository}"):
            self.tags_table.upsert_entity({
                "PartitionKey": partition_key,
                "RowKey": f"{join_key(tag)}{SEPARATOR}{inverted_time(at)}",
                "registry": registry, "repository": repository, "tag": tag,
                "digest": digest, "at": at,
            })
        for event in previous[:1]:
            if event.digest != digest:
                self._drop_tag(registry, event.digest, tag, repository)

    def _drop_tag(self, registry: str, digest: str, tag: str, repository: str) -> None:
        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            tags = json_list(row.get("tags"))
            if tag not in tags:
                return None
            row["tags"] = json.dumps([item for item in tags if item != tag])
            return row

        self.modify(registry, repository, digest, change, f"moving tag {tag} off {digest}")

    def tag_history(self, registry: str, repository: str, tag: str = "") -> tuple[TagEvent, ...]:
        """Where tags pointed, newest first per tag (all tags, or one)."""
        parameters = {"pk": join_key(registry, repository)}
        query_filter = "PartitionKey eq @pk"
        if tag:
            query_filter += " and RowKey gt @low and RowKey lt @high"
            parameters["low"] = join_key(tag) + SEPARATOR
            parameters["high"] = join_key(tag) + chr(ord(SEPARATOR) + 1)
        with storage_errors(f"reading tag history of {repository}"):
            entities = list(self.tags_table.query_entities(query_filter, parameters=parameters))
        return tuple(
            TagEvent(registry=registry, repository=repository, tag=as_str(entity.get("tag")),
                     digest=as_str(entity.get("digest")),
                     at=as_datetime(entity.get("at")) or datetime.min)
            for entity in entities
        )

    def set_scan_state(self, registry: str, repository: str, digest: str,
                       state: ScanState) -> None:
        """Say the image's scan is ``state`` (no-op for an unknown image)."""

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None or row.get("scan_state") == state.value:
                return None
            row["scan_state"] = state.value
            return row

        self.modify(registry, repository, digest, change, f"marking {digest} {state.value}")

    def set_size(self, registry: str, repository: str, digest: str, size_bytes: int) -> None:
        """Record the image's size (its manifests' layers and configs); no-op for an unknown
        image."""

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None or as_int(row.get("size_bytes")) == size_bytes:
                return None
            row["size_bytes"] = int64(size_bytes)
            return row

        self.modify(registry, repository, digest, change, f"recording size of {digest}")

    def mark_deleted(self, registry: str, repository: str, digest: str,
                     at: datetime) -> ImageRecord:
        """Mark the image deleted from ``repository`` (no more rescans of it); its results and
        history stay, and the digest's images in other repositories are untouched."""
        moment = utc(at)

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            if row.get("deleted"):
                return None
            row["deleted"] = True
            row["deleted_at"] = moment
            return row

        record = self.modify(registry, repository, digest, change, f"deleting image {digest}")
        if record is None:
            return self.get(registry, repository, digest)  # deleted already, or NotFound
        return record

    def merge_rows(self, updates: Iterable[RowUpdate]) -> MergeReport:
        """Apply row updates in transactions of at most 100 rows of one partition (registry)
        and at most ``MAX_BATCH_BYTES`` of payload, each merge conditional on the row's ETag.

        A transaction fails as a whole when one of its rows changed since it was read; its
        updates are then redone one by one (``modify``), dropped for rows whose ``expected``
        properties no longer hold (a newer assessment is stored).
        """
        by_partition: dict[str, list[RowUpdate]] = {}
        for update in updates:
            by_partition.setdefault(image_partition(update.registry, update.digest),
                                    []).append(update)
        applied: list[RowUpdate] = []
        dropped: list[RowUpdate] = []
        for partition_key, group in by_partition.items():
            for chunk in _batches(group):
                operations = [
                    (TransactionOperation.UPDATE,
                     {"PartitionKey": partition_key,
                      "RowKey": join_key(update.digest, update.repository), **update.changes},
                     {"mode": UpdateMode.MERGE, "etag": update.etag,
                      "match_condition": MatchConditions.IfNotModified})
                    for update in chunk
                ]
                try:
                    with storage_errors(f"updating {len(chunk)} image rows"):
                        try:
                            transactions.submit(self.table, operations)
                        except TableTransactionError as error:
                            if error.status_code not in (404, 409, 412):
                                raise
                            log.info("image rows changed while rescanning (%s); updating %d "
                                     "rows one by one", error.status_code, len(chunk))
                            raise _Conflict from error
                except _Conflict:
                    for update in chunk:
                        (applied if self._merge_one(update) else dropped).append(update)
                    continue
                applied.extend(chunk)
        return MergeReport(applied=tuple(applied), dropped=tuple(dropped))

    def _merge_one(self, update: RowUpdate) -> bool:
        done: list[bool] = []

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            done.clear()
            if row is None or any(row.get(name) != value
                                  for name, value in update.expected.items()):
                return None
            row.update(update.changes)
            done.append(True)
            return row

        self.modify(update.registry, update.repository, update.digest, change,
                    f"updating image {update.digest}")
        return bool(done)

    def set_last_pulled(self, registry: str, repository: str, digest: str,
                        at: datetime) -> None:
        """Move ``last_pulled`` forward (never back); no-op for an unknown image."""
        moment = utc(at)

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            last = as_datetime(row.get("last_pulled"))
            if last is not None and last >= moment:
                return None
            row["last_pulled"] = moment
            return row

        self.modify(registry, repository, digest, change, f"recording pull of {digest}")


def image_query(filters: ImageFilter) -> tuple[str, dict[str, Any]]:
    """The service-side filter of ``filters`` and its parameters."""
    clauses: list[str] = []
    parameters: dict[str, Any] = {}
    if filters.registry:
        # Every shard of the registry: keys from ``<registry>|`` up to ``<registry>}``.
        clauses.append("PartitionKey ge @registry_low and PartitionKey lt @registry_high")
        parameters["registry_low"] = encode_key(filters.registry) + SEPARATOR
        parameters["registry_high"] = encode_key(filters.registry) + SEPARATOR_END
    if filters.repository:
        clauses.append("repository eq @repository")
        parameters["repository"] = filters.repository
    if filters.status is not None:
        clauses.append("status eq @status")
        parameters["status"] = filters.status.value
    if filters.scan_state is not None:
        clauses.append("status eq '' and scan_state eq @scan_state")
        parameters["scan_state"] = filters.scan_state.value
    if filters.severity is not None:
        at_or_above = [sev for sev in Severity if sev >= filters.severity]
        clauses.append("(" + " or ".join(
            f"{count_column('active', sev)} gt 0" for sev in at_or_above) + ")")
    if not filters.include_deleted:
        clauses.append("deleted eq false")
    return " and ".join(clauses), parameters


def new_image_row(registry: str, repository: str, digest: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "registry": registry, "repository": repository, "digest": digest,
        "tags": "[]", "platforms": "[]", "media_type": "", "size_bytes": int64(0),
        "status": "", "reason": "", "deleted": False, "current_generation": "",
    }
    row.update(counts_to_entity(FindingCounts()))
    return row

