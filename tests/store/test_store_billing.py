from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from scanning.errors import BadRequest
from scanning.model import ScanTrigger
from scanning.store import BillingRecord, BillingResult, BillingSummary, Store
from scanning.store.keys import join_key

pytestmark = pytest.mark.integration

REGISTRY = "myacr.azurecr.io"
DIGEST = "sha256:" + "1" * 64
MARCH = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def bill(store: Store, digest: str = DIGEST, trigger: ScanTrigger = ScanTrigger.PUSH,
         at: datetime = MARCH, price: str = "0.29", repository: str = "team/app"
         ) -> BillingResult:
    return store.billing.bill_first_scan(registry=REGISTRY, repository=repository, digest=digest,
                                         trigger=trigger, at=at, unit_price=Decimal(price),
                                         currency="USD")


RECORD = BillingRecord(registry=REGISTRY, repository="team/app", digest=DIGEST,
                       trigger=ScanTrigger.PUSH, billed_at=MARCH, unit_price=Decimal("0.29"),
                       currency="USD", repositories=("team/app",))


def test_first_scan_creates_one_record(store: Store) -> None:
    assert bill(store) == BillingResult(created=True, record=RECORD, reason="first scan")
    assert store.billing.get(REGISTRY, DIGEST) == RECORD


def test_same_digest_twice_is_billed_once(store: Store) -> None:
    bill(store)
    again = bill(store, trigger=ScanTrigger.IMPORT, at=datetime(2025, 4, 2, tzinfo=UTC))
    assert again == BillingResult(created=False, record=RECORD, reason="already billed")
    assert store.billing.billed_images("2025-04").items == ()
    assert store.billing.billed_images("2025-03").items == (RECORD,)


def test_a_second_repository_is_listed_not_billed(store: Store) -> None:
    bill(store)
    again = bill(store, repository="prod/app", trigger=ScanTrigger.IMPORT)
    listed = dataclasses.replace(RECORD, repositories=("prod/app", "team/app"))
    assert (again, store.billing.get(REGISTRY, DIGEST),
            store.billing.billed_images("2025-03").items) == (
        BillingResult(created=False, record=listed, reason="already billed"), listed, (listed,))


def test_eight_threads_racing_create_one_record(store: Store) -> None:
    results: list[BillingResult] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(bill(store))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.created for result in results) == [False] * 7 + [True]
    assert {result.record for result in results} == {RECORD}
    assert store.billing.summary("2025-03") == BillingSummary(
        month="2025-03", count=1, totals={"USD": Decimal("0.29")})


def test_rescans_are_never_billed(store: Store) -> None:
    result = bill(store, trigger=ScanTrigger.RESCAN)
    assert (result.created, result.record, store.billing.get(REGISTRY, DIGEST)) == (
        False, None, None)


def test_month_summary_counts_and_totals(store: Store) -> None:
    bill(store, "sha256:" + "1" * 64, price="0.29")
    bill(store, "sha256:" + "2" * 64, price="0.31")
    bill(store, "sha256:" + "3" * 64, at=datetime(2025, 4, 1, tzinfo=UTC))
    assert store.billing.summary("2025-03") == BillingSummary(
        month="2025-03", count=2, totals={"USD": Decimal("0.60")})


def test_billed_images_page(store: Store) -> None:
    digests = [f"sha256:{index:064x}" for index in range(5)]
    for digest in digests:
        bill(store, digest)
    first = store.billing.billed_images("2025-03", page_size=3)
    second = store.billing.billed_images("2025-03", page_size=3, token=first.next_token)
    assert [record.digest for record in (*first.items, *second.items)] == digests
    assert second.next_token is None


def test_duplicate_repairs_a_missing_month_row(store: Store) -> None:
    bill(store)
    store.billing.table.delete_entity("2025-03", join_key(REGISTRY, DIGEST))  # writer died
    bill(store)
    assert store.billing.billed_images("2025-03").items == (RECORD,)


def test_bad_month_is_a_bad_request(store: Store) -> None:
    with pytest.raises(BadRequest, match="YYYY-MM"):
        store.billing.summary("2025-13")


def test_price_defaults_to_settings(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_UNIT_PRICE", "1.10")
    monkeypatch.setenv("BILLING_CURRENCY", "EUR")
    result = store.billing.bill_first_scan(registry=REGISTRY, repository="team/app",
                                           digest=DIGEST, trigger=ScanTrigger.MANUAL, at=MARCH)
    assert result.record is not None
    assert (result.record.unit_price, result.record.currency) == (Decimal("1.10"), "EUR")
