"""The billing ledger: exactly one record per image digest, written on its first scan.

The record is per registry + digest, not per repository: the same digest in a second
repository of the registry is not billed again, and the record lists every repository the
digest was seen in (``repositories``, JSON; ``repository`` is the first).

Two tables:

* ``billingdigests`` (the claim): PartitionKey ``encode_key(registry)``, RowKey
  ``encode_key(digest)``, holding the whole record. It is written with an *insert*
  (``create_entity``): the service refuses a second insert of the same keys with 409
  (``ResourceExistsError``), which is what makes billing idempotent and race-safe. Duplicate
  events, activity retries and concurrent scans of one digest all lose that race but one.
* ``billing`` (the monthly view): PartitionKey ``YYYY-MM``, RowKey ``join_key(registry,
  digest)``, a copy of the claim, so a month's summary and its billed images are one partition
  query.

The two writes cannot share a transaction (different tables). The claim is written first; if
the writer dies before the monthly row, the next attempt for that digest finds the claim and
writes the monthly row from it (both writes are of the same data, so racing repairs agree).
Money is kept as decimal text (``Decimal``), never as a float.

Only first scans bill: triggers ``push``, ``import``, ``manual`` and ``catchup`` (an image whose
push event was missed is still scanned for the first time) (``BILLABLE_TRIGGERS``); rescans never
create a record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scanning.config import setting
from scanning.errors import BadRequest, ConfigError, StoreError
from scanning.model import ScanTrigger
from scanning.store.entities import (
    as_datetime,
    as_str,
    bounded_json_list,
    json_list,
    modify_entity,
    read_entity,
    storage_errors,
    utc,
)
from scanning.store.keys import encode_key, join_key
from scanning.store.paging import Page, query_page

log = logging.getLogger(__name__)

BILLABLE_TRIGGERS = frozenset({ScanTrigger.PUSH, ScanTrigger.IMPORT, ScanTrigger.MANUAL,
                               ScanTrigger.CATCHUP})
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingRecord:
    registry: str
    repository: str
    digest: str
    trigger: ScanTrigger
    billed_at: datetime
    unit_price: Decimal
    currency: str
    repositories: tuple[str, ...] = ()

    @property
    def month(self) -> str:
        return f"{self.billed_at:%Y-%m}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingResult:
    """``created`` is True only for the call that wrote the record."""

    created: bool
    record: BillingRecord | None  # None: the trigger is not billable
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSummary:
    month: str
    count: int
    totals: dict[str, Decimal] = field(default_factory=dict, hash=False)  # per currency


def check_month(month: str) -> str:
    if not _MONTH.fullmatch(month):
        raise BadRequest(f"month must be YYYY-MM, got {month!r}")
    return month


def price_from_settings() -> tuple[Decimal, str]:
    raw = setting("BILLING_UNIT_PRICE")
    try:
        price = Decimal(raw)
    except InvalidOperation as error:
        raise ConfigError(f"BILLING_UNIT_PRICE must be a decimal number, got {raw!r}") from error
    if not price.is_finite() or price < 0:
        raise ConfigError(f"BILLING_UNIT_PRICE must be a non-negative number, got {raw!r}")
    return price, setting("BILLING_CURRENCY")


def _record_columns(record: BillingRecord) -> dict[str, Any]:
    return {
        "registry": record.registry, "repository": record.repository, "digest": record.digest,
        "repositories": bounded_json_list(sorted(record.repositories)),
        "trigger": record.trigger.value, "billed_at": record.billed_at,
        "unit_price": str(record.unit_price), "currency": record.currency,
        "month": record.month,
    }


def billing_from_entity(entity: Mapping[str, Any]) -> BillingRecord:
    billed_at = as_datetime(entity.get("billed_at"))
    try:
        if billed_at is None:
            raise ValueError("billed_at is missing")
        return BillingRecord(
            registry=as_str(entity.get("registry")), repository=as_str(entity.get("repository")),
            digest=as_str(entity.get("digest")), trigger=ScanTrigger(as_str(entity.get("trigger"))),
            billed_at=billed_at, unit_price=Decimal(as_str(entity.get("unit_price"))),
            currency=as_str(entity.get("currency")),
            repositories=tuple(json_list(entity.get("repositories"))),
        )
    except (ValueError, InvalidOperation) as error:
        raise StoreError(f"billing row {entity.get('RowKey')!r} is malformed: {error}") from error


class BillingTable:
    def __init__(self, ledger: TableClient, claims: TableClient) -> None:
        self.table = ledger
        self.claims = claims

    def bill_first_scan(
        self, *, registry: str, repository: str, digest: str, trigger: ScanTrigger,
        at: datetime, unit_price: Decimal | None = None, currency: str | None = None,
    ) -> BillingResult:
        """Bill ``digest`` once, ever; later calls return the existing record, not created."""
        if trigger not in BILLABLE_TRIGGERS:
            return BillingResult(created=False, record=None,
                                 reason=f"{trigger.value} scans are not billed")
        if unit_price is None or currency is None:
            default_price, default_currency = price_from_settings()
            unit_price = default_price if unit_price is None else unit_price
            currency = default_currency if currency is None else currency
        record = BillingRecord(registry=registry, repository=repository, digest=digest,
                               trigger=trigger, billed_at=utc(at), unit_price=unit_price,
                               currency=currency, repositories=(repository,))
        claim = {"PartitionKey": encode_key(registry), "RowKey": encode_key(digest),
                 **_record_columns(record)}
        with storage_errors(f"billing {digest}"):
            try:
                self.claims.create_entity(claim)
            except ResourceExistsError:
                existing = self._add_repository(registry, repository, digest)
                self._write_month_row(existing)  # repairs a writer that died in between
                log.info("image %s already billed on %s", digest, existing.billed_at)
                return BillingResult(created=False, record=existing, reason="already billed")
        self._write_month_row(record)
        log.info("billed image %s (%s) %s %s", digest, trigger.value, unit_price, currency)
        return BillingResult(created=True, record=record, reason="first scan")

    def _add_repository(self, registry: str, repository: str, digest: str) -> BillingRecord:
        """The existing claim of ``digest``, with ``repository`` added to its list."""
        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                raise StoreError(f"billing claim of {digest} vanished")
            listed = json_list(row.get("repositories")) or [as_str(row.get("repository"))]
            if repository in listed:
                return None
            row["repositories"] = bounded_json_list(sorted({*listed, repository}))
            return row

        entity = modify_entity(self.claims, encode_key(registry), encode_key(digest), change,
                               f"billing {digest}")
        assert entity is not None
        return billing_from_entity(entity)

    def _write_month_row(self, record: BillingRecord) -> None:
        with storage_errors(f"billing {record.digest}"):
            self.table.upsert_entity({
                "PartitionKey": record.month,
                "RowKey": join_key(record.registry, record.digest),
                **_record_columns(record),
            })

    def get(self, registry: str, digest: str) -> BillingRecord | None:
        entity = read_entity(self.claims, encode_key(registry), encode_key(digest),
                             f"reading billing of {digest}")
        return billing_from_entity(entity) if entity is not None else None

    def billed_images(self, month: str, page_size: int = 100,
                      token: str | None = None) -> Page[BillingRecord]:
        return query_page(
            self.table, query_filter="PartitionKey eq @month",
            parameters={"month": check_month(month)}, page_size=page_size, token=token,
            convert=billing_from_entity, operation=f"listing billing of {month}",
        )

    def summary(self, month: str) -> BillingSummary:
        totals: dict[str, Decimal] = {}
        count = 0
        with storage_errors(f"summing billing of {month}"):
            for entity in self.table.query_entities(
                "PartitionKey eq @month", parameters={"month": check_month(month)},
                select=["unit_price", "currency", "RowKey"],
            ):
                currency = as_str(entity.get("currency"))
                try:
                    price = Decimal(as_str(entity.get("unit_price")))
                except InvalidOperation as error:
                    raise StoreError(f"billing row {entity.get('RowKey')!r} has a bad price"
                                     ) from error
                totals[currency] = totals.get(currency, Decimal(0)) + price
                count += 1
        return BillingSummary(month=month, count=count, totals=totals)
