"""Scan history: one row per scan (first scan, rescan, manual, catch-up), kept after deletes.

Keys are chosen so the whole table reads newest first: PartitionKey is the inverted start
second (13 digits) plus the first hex digit of the id's random part, and RowKey the inverted
start time (microseconds) plus the random part; the Table service returns partitions and rows
in ascending key order (scans started within the same second come by that digit, then time). A
scan id, ``YYYYMMDDTHHMMSSffffffZ-<8 hex>``, carries its start time, so ``get`` is a point read.
The digit spreads the 10,000 history rows a weekly rescan writes at one start time over 16
partitions (a month's rows shared one partition before: Azurite scans a whole partition for
every point operation, and an Azure partition serves ~2,000 entities/s).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient, TransactionOperation

from scanning.errors import BadRequest, NotFound, StoreError
from scanning.model import AssessmentStatus, ScanTrigger
from scanning.store.entities import (
    as_datetime,
    as_str,
    bounded_text,
    modify_entity,
    read_entity,
    storage_errors,
    submit_batches,
    utc,
)
from scanning.store.images import inverted_time
from scanning.store.paging import Page, query_page

_SCAN_ID = re.compile(r"(\d{8}T\d{12})Z-([0-9a-f]{8})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRecord:
    id: str
    registry: str
    repository: str
    digest: str
    trigger: ScanTrigger
    started: datetime
    finished: datetime | None = None
    duration_seconds: float | None = None
    outcome: AssessmentStatus | None = None  # None while running
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFilter:
    registry: str = ""
    repository: str = ""
    digest: str = ""
    trigger: ScanTrigger | None = None


def new_scan_id(started: datetime, unique: str = "") -> str:
    """A scan id for a scan started at ``started``.

    With ``unique`` (say the orchestration instance id and attempt) the id is deterministic,
    so a retried activity writes the same record instead of a second one.
    """
    suffix = (hashlib.sha256(unique.encode()).hexdigest()[:8] if unique
              else secrets.token_hex(4))
    return f"{utc(started):%Y%m%dT%H%M%S%f}Z-{suffix}"


def scan_keys(scan_id: str) -> tuple[str, str, datetime]:
    match = _SCAN_ID.fullmatch(scan_id)
    if match is None:
        raise BadRequest(f"not a scan id: {scan_id!r}")
    try:
        started = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError as error:
        raise BadRequest(f"not a scan id: {scan_id!r}") from error
    inverted = inverted_time(started)
    # The first 13 of 19 digits: inverted whole seconds (10**6 microseconds).
    partition_key = f"{inverted[:13]}{match.group(2)[0]}"
    return partition_key, f"{inverted}-{match.group(2)}", started


def scan_from_entity(entity: Mapping[str, Any]) -> ScanRecord:
    outcome = as_str(entity.get("outcome"))
    duration = entity.get("duration_seconds")
    try:
        return ScanRecord(
            id=as_str(entity.get("scan_id")),
            registry=as_str(entity.get("registry")),
            repository=as_str(entity.get("repository")),
            digest=as_str(entity.get("digest")),
            trigger=ScanTrigger(as_str(entity.get("trigger"))),
            started=as_datetime(entity.get("started")) or datetime.min.replace(tzinfo=UTC),
            finished=as_datetime(entity.get("finished")),
            duration_seconds=float(duration) if isinstance(duration, (int, float)) else None,
            outcome=AssessmentStatus(outcome) if outcome else None,
            error=as_str(entity.get("error")),
        )
    except ValueError as error:
        raise StoreError(f"scan row {entity.get('RowKey')!r} is malformed: {error}") from error


class ScanTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def start(self, *, registry: str, repository: str, digest: str, trigger: ScanTrigger,
              started: datetime, scan_id: str = "") -> ScanRecord:
        """Record a scan as running; idempotent for a given ``scan_id``."""
        scan_id = scan_id or new_scan_id(started)
        partition_key, row_key, id_time = scan_keys(scan_id)
        record = ScanRecord(id=scan_id, registry=registry, repository=repository,
                            digest=digest, trigger=trigger, started=id_time)
        with storage_errors(f"recording scan {scan_id}"):
            self.table.upsert_entity({
                "PartitionKey": partition_key, "RowKey": row_key, "scan_id": scan_id,
                "registry": registry, "repository": repository, "digest": digest,
                "trigger": trigger.value, "started": id_time, "outcome": "",
            })
        return record

    def finish(self, scan_id: str, *, finished: datetime, outcome: AssessmentStatus,
               error: str = "") -> ScanRecord:
        partition_key, row_key, started = scan_keys(scan_id)
        moment = utc(finished)

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            row.update(finished=moment, outcome=outcome.value, error=bounded_text(error),
                       duration_seconds=max(0.0, (moment - started).total_seconds()))
            return row

        row = modify_entity(self.table, partition_key, row_key, change,
                            f"finishing scan {scan_id}")
        if row is None:
            raise NotFound(f"no scan {scan_id}")
        return scan_from_entity(row)

    def record_finished(self, records: Iterable[ScanRecord]) -> int:
        """Write whole (finished) scan rows in transactions of 100 per partition (month).

        For the weekly rescan: its rows share one start time, so 16 partitions. Upserts: a
        rerun with the same deterministic ids rewrites its rows.
        """
        operations = []
        for record in records:
            partition_key, row_key, started = scan_keys(record.id)
            finished = utc(record.finished) if record.finished is not None else None
            row: dict[str, Any] = {
                "PartitionKey": partition_key, "RowKey": row_key, "scan_id": record.id,
                "registry": record.registry, "repository": record.repository,
                "digest": record.digest, "trigger": record.trigger.value, "started": started,
                "outcome": record.outcome.value if record.outcome else "",
                "error": bounded_text(record.error),
            }
            if finished is not None:
                row["finished"] = finished
                row["duration_seconds"] = max(0.0, (finished - started).total_seconds())
            operations.append((TransactionOperation.UPSERT, row))
        return submit_batches(self.table, operations, "recording scans")

    def get(self, scan_id: str) -> ScanRecord:
        partition_key, row_key, _ = scan_keys(scan_id)
        entity = read_entity(self.table, partition_key, row_key, f"reading scan {scan_id}")
        if entity is None:
            raise NotFound(f"no scan {scan_id}")
        return scan_from_entity(entity)

    def list(self, filters: ScanFilter = ScanFilter(), page_size: int = 100,
             token: str | None = None) -> Page[ScanRecord]:
        """Scans newest first."""
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        for name in ("registry", "repository", "digest"):
            value = getattr(filters, name)
            if value:
                clauses.append(f"{name} eq @{name}")
                parameters[name] = value
        if filters.trigger is not None:
            clauses.append("trigger eq @trigger")
            parameters["trigger"] = filters.trigger.value
        return query_page(self.table, query_filter=" and ".join(clauses), parameters=parameters,
                          page_size=page_size, token=token, convert=scan_from_entity,
                          operation="listing scans")
