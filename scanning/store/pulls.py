"""The pull ledger: last pull time and pull count per registry + repository + digest.

PartitionKey ``encode_key(registry)``, RowKey ``join_key(digest, repository)``: a pull names
the repository it pulled from (ACR's ``ContainerRegistryRepositoryEvents`` and the
Distribution registry's notifications both carry it), and the weekly rescan re-assesses the
repositories whose image was pulled. The count is Int64 (a
popular image passes 2^31 pulls). ``record_pull`` is additive and moves ``last_pulled`` only
forward, so replayed or out-of-order pull notifications never make an image look older.
Callers filter out the scanner's own pulls before recording (``scanning.pulls``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from scanning.errors import BadRequest
from scanning.store.entities import (
    as_datetime,
    as_int,
    as_str,
    int64,
    modify_entity,
    read_entity,
    storage_errors,
    utc,
)
from scanning.store.keys import encode_key, join_key


@dataclass(frozen=True, slots=True, kw_only=True)
class PullLedgerEntry:
    registry: str
    repository: str
    digest: str
    last_pulled: datetime
    first_pulled: datetime
    count: int


def pull_from_entity(entity: Mapping[str, Any]) -> PullLedgerEntry:
    last = as_datetime(entity.get("last_pulled"))
    first = as_datetime(entity.get("first_pulled")) or last
    assert last is not None and first is not None
    return PullLedgerEntry(
        registry=as_str(entity.get("registry")), repository=as_str(entity.get("repository")),
        digest=as_str(entity.get("digest")), last_pulled=last, first_pulled=first,
        count=as_int(entity.get("count")),
    )


class PullTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def record_pull(self, *, registry: str, repository: str, digest: str, at: datetime,
                    count: int = 1) -> PullLedgerEntry:
        """Add ``count`` pulls at ``at`` (the latest one, for an aggregated log row)."""
        if count < 1:
            raise BadRequest(f"pull count must be positive, got {count}")
        if not repository:
            raise BadRequest("a pull names its repository")
        moment = utc(at)

        def change(row: dict[str, Any] | None) -> dict[str, Any]:
            if row is None:
                return {"registry": registry, "repository": repository, "digest": digest,
                        "first_pulled": moment, "last_pulled": moment, "count": int64(count)}
            last = as_datetime(row.get("last_pulled"))
            first = as_datetime(row.get("first_pulled"))
            row["last_pulled"] = max(last, moment) if last else moment
            row["first_pulled"] = min(first, moment) if first else moment
            row["count"] = int64(as_int(row.get("count")) + count)
            return row

        row = modify_entity(self.table, encode_key(registry), join_key(digest, repository),
                            change, f"recording pull of {digest}")
        assert row is not None
        return pull_from_entity(row)

    def get(self, registry: str, repository: str, digest: str) -> PullLedgerEntry | None:
        entity = read_entity(self.table, encode_key(registry), join_key(digest, repository),
                             f"reading pulls of {digest}")
        return pull_from_entity(entity) if entity is not None else None

    def pulled_since(self, since: datetime) -> Iterator[PullLedgerEntry]:
        """Every image pulled at or after ``since`` (a filtered scan of the ledger)."""
        with storage_errors("listing pulled images"):
            for entity in self.table.query_entities(
                "last_pulled ge @since", parameters={"since": utc(since)}
            ):
                yield pull_from_entity(entity)
