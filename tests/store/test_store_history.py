"""Scan history, pull ledger, rules table and blobs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from scanning.errors import BadRequest, NotFound
from scanning.model import AssessmentStatus, ScanTrigger
from scanning.store import PullLedgerEntry, ScanFilter, ScanRecord, Store, new_scan_id
from scanning.store.scans import scan_keys

pytestmark = pytest.mark.integration

REGISTRY = "localhost:5000"
DIGEST = "sha256:" + "f" * 64
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_scan_start_and_finish_record_duration_and_outcome(store: Store) -> None:
    scan = store.scans.start(registry=REGISTRY, repository="team/app", digest=DIGEST,
                             trigger=ScanTrigger.PUSH, started=T0)
    store.scans.finish(scan.id, finished=T0 + timedelta(seconds=4.5),
                       outcome=AssessmentStatus.FAILED, error="layer truncated")
    assert store.scans.get(scan.id) == ScanRecord(
        id=scan.id, registry=REGISTRY, repository="team/app", digest=DIGEST,
        trigger=ScanTrigger.PUSH, started=T0, finished=T0 + timedelta(seconds=4.5),
        duration_seconds=4.5, outcome=AssessmentStatus.FAILED, error="layer truncated")


def test_scan_with_deterministic_id_is_recorded_once(store: Store) -> None:
    scan_id = new_scan_id(T0, "instance-1")
    for _ in range(2):
        store.scans.start(registry=REGISTRY, repository="team/app", digest=DIGEST,
                          trigger=ScanTrigger.PUSH, started=T0, scan_id=scan_id)
    assert [scan.id for scan in store.scans.list().items] == [scan_id]


def test_scans_list_newest_first_across_months_and_filters(store: Store) -> None:
    times = [T0 - timedelta(days=40), T0, T0 + timedelta(minutes=5)]
    ids = [store.scans.start(registry=REGISTRY, repository="team/app", digest=DIGEST,
                             trigger=ScanTrigger.RESCAN if index else ScanTrigger.PUSH,
                             started=moment).id
           for index, moment in enumerate(times)]
    assert [scan.id for scan in store.scans.list(page_size=2).items] == [ids[2], ids[1]]
    pushed = store.scans.list(ScanFilter(trigger=ScanTrigger.PUSH))
    assert [scan.id for scan in pushed.items] == [ids[0]]


def test_unknown_scan_is_not_found_and_bad_id_is_bad_request(store: Store) -> None:
    with pytest.raises(NotFound):
        store.scans.get(new_scan_id(T0))
    with pytest.raises(BadRequest):
        store.scans.get("../etc/passwd")


def test_images_pulled_since_returns_only_recent_pulls(store: Store) -> None:
    store.record_pull(registry=REGISTRY, repository="team/app", digest=DIGEST, at=T0)
    store.record_pull(registry=REGISTRY, repository="team/old", digest="sha256:" + "0" * 64,
                      at=T0 - timedelta(days=45))
    assert list(store.images_pulled_since(T0 - timedelta(days=30))) == [PullLedgerEntry(
        registry=REGISTRY, repository="team/app", digest=DIGEST, last_pulled=T0,
        first_pulled=T0, count=1)]


RULE = {"id": "rule-1", "justification": "accepted risk",
        "criteria": {"vulnerabilityIds": ["CVE-2024-0001"]}}


def test_rules_create_get_list_delete(store: Store) -> None:
    assert store.rules.create("rule-1", RULE) is True
    assert store.rules.create("rule-1", {**RULE, "justification": "other"}) is False
    assert store.rules.get("rule-1") == RULE
    assert store.rules.list() == (RULE,)
    store.rules.delete("rule-1")
    assert store.rules.list() == ()


def test_deleting_unknown_rule_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.rules.delete("missing")


def test_inventory_round_trips_as_bytes(store: Store) -> None:
    payload = b'{"packages": []}\x00\xff'
    store.blobs.put_inventory(REGISTRY, DIGEST, payload)
    assert (store.blobs.get_inventory(REGISTRY, DIGEST), store.blobs.has_inventory(
        REGISTRY, DIGEST)) == (payload, True)


def test_inventory_mapping_is_stored_as_json(store: Store) -> None:
    store.blobs.put_inventory("reg.io", "sha256:" + "1" * 64, {"packages": [1]})
    assert store.blobs.get_inventory("reg.io", "sha256:" + "1" * 64) == b'{"packages":[1]}'


def test_missing_inventory_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no inventory"):
        store.blobs.get_inventory(REGISTRY, DIGEST)


def test_concurrent_pulls_are_all_counted(store: Store) -> None:
    def pull(offset: int) -> None:
        store.pulls.record_pull(registry=REGISTRY, repository="team/app", digest=DIGEST,
                                at=T0 + timedelta(seconds=offset))

    threads = [threading.Thread(target=pull, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entry = store.pulls.get(REGISTRY, "team/app", DIGEST)
    assert entry is not None
    assert (entry.count, entry.last_pulled, entry.first_pulled) == (
        8, T0 + timedelta(seconds=7), T0)


def test_scan_keys_spread_one_second_over_16_partitions_newest_first() -> None:
    earlier, later = "20250301T120000000001Z-0a0a0a0a", "20250301T120001000000Z-3b3b3b3b"
    same_second = "20250301T120000999999Z-fc0c0c0c"
    # A later second sorts first; within one second the id's first random digit decides.
    assert [scan_keys(scan_id)[0] for scan_id in (later, earlier, same_second)] == [
        "99982591695983", "99982591695990", "9998259169599f"]
