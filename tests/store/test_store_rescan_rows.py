"""What the weekly rescan stores without rewriting findings: the match keys on the image row,
row updates in batched transactions, and scan history rows in batches."""

from __future__ import annotations

import dataclasses
import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import zstandard
from azure.data.tables import TableClient

from scanning.model import AssessmentStatus, ScanTrigger
from scanning.store import Assessment, Store, transactions
from scanning.store.images import (
    ImageRecord,
    MergeReport,
    RowUpdate,
    inventory_columns,
)
from scanning.store.match_keys import (
    MatchKeys,
    encode_match_keys,
    read_match_keys,
)
from scanning.store.scans import ScanRecord, new_scan_id

REGISTRY = "myacr.azurecr.io"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
def decode_match_keys(data: bytes) -> tuple | None:
    """The signed lookups the match keys hold (None when unreadable)."""
    keys = read_match_keys(data)
    return None if keys is None else keys.signed


SIGNED = ((("PyPI", "requests", "2.0.0"), "0123456789abcdef"),
          (("Alpine:v3.19", "musl", "1.2.4-r1"), ""))


def test_match_keys_are_compressed_sorted_json() -> None:
    assert json.loads(zlib.decompress(encode_match_keys(SIGNED))) == [
        ["Alpine:v3.19", "musl", "1.2.4-r1", ""],
        ["PyPI", "requests", "2.0.0", "0123456789abcdef"],
    ]


def test_match_keys_read_back_sorted() -> None:
    assert decode_match_keys(encode_match_keys(SIGNED)) == (SIGNED[1], SIGNED[0])


def test_match_keys_name_the_inventory_document_they_were_listed_from() -> None:
    data = encode_match_keys(SIGNED, "0123456789abcdef0123456789abcdef")
    assert json.loads(zlib.decompress(data)) == {
        "inventory": "0123456789abcdef0123456789abcdef",
        "keys": [["Alpine:v3.19", "musl", "1.2.4-r1", ""],
                 ["PyPI", "requests", "2.0.0", "0123456789abcdef"]]}
    assert read_match_keys(data) == MatchKeys((SIGNED[1], SIGNED[0]),
                                              "0123456789abcdef0123456789abcdef")
    assert decode_match_keys(data) == (SIGNED[1], SIGNED[0])


def test_match_keys_stored_as_the_bare_list_name_no_inventory() -> None:
    assert read_match_keys(encode_match_keys(SIGNED)) == MatchKeys((SIGNED[1], SIGNED[0]), "")


@pytest.mark.parametrize("document", [
    {"inventory": "", "keys": []}, {"inventory": 7, "keys": []},
    {"inventory": "ab", "keys": {"a": 1}}, {"inventory": "ab"},
    {"inventory": "ab", "keys": [["PyPI", "requests", "2.0.0"]]},
])
def test_match_keys_naming_no_usable_inventory_or_keys_are_unreadable(
        document: dict[str, Any]) -> None:
    assert read_match_keys(zlib.compress(json.dumps(document).encode())) is None


def test_match_keys_that_fit_only_compressed_hardest_are_stored() -> None:
    # 4,500 lookups: 68,202 bytes at zlib level 1 (the usual level), 62,981 at level 9.
    signed = [(("npm", f"package-{number:06d}-{number * 7919 % 104729}", "1.0.0"),
               f"{number * 2654435761 % 2**64:016x}") for number in range(4500)]
    data = encode_match_keys(signed)
    assert len(data) == 62_981
    assert decode_match_keys(data) == tuple(sorted(signed))


def test_match_keys_too_large_for_a_property_are_not_stored() -> None:
    signed = [(("npm", f"package-{number:06d}-{number * 7919 % 104729}", "1.0.0"),
               f"{number * 2654435761 % 2**64:016x}") for number in range(6000)]
    assert encode_match_keys(signed) == b""


@pytest.mark.parametrize("data", [b"", b"not zlib", zlib.compress(b'{"a": 1}'),
                                  zlib.compress(b'[["PyPI", "x", "1"]]')])
def test_unreadable_match_keys_mean_unknown(data: bytes) -> None:
    assert decode_match_keys(data) is None


def _assessed(store: Store, digest: str) -> None:
    store.images.record_push(registry=REGISTRY, repository="app", digest=digest, at=T0)
    store.save_assessment(REGISTRY, "app", digest, Assessment(
        status=AssessmentStatus.HEALTHY, assessed_at=T0, index_version="v1", scan_id="s1",
        match_keys=encode_match_keys(SIGNED)))


def _updates(store: Store, digests: list[str]) -> list[RowUpdate]:
    rows = {image.digest: (image, etag) for image, etag in store.images.iter_with_etags()}
    return [RowUpdate(registry=REGISTRY, repository="app", digest=digest, etag=rows[digest][1],
                      changes={"index_version": "v2"},
                      expected={"current_generation": rows[digest][0].current_generation,
                                "last_scan_id": "s1"})
            for digest in digests]


def _outcome(report: MergeReport) -> tuple[list[str], list[str]]:
    return ([update.digest[-1] for update in report.applied],
            [update.digest[-1] for update in report.dropped])


def _count_transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    submit = transactions.submit

    def counted(table: TableClient, operations: Any) -> Any:
        if table is store.images.table:
            sizes.append(len(operations))
        return submit(table, operations)

    monkeypatch.setattr(transactions, "submit", counted)
    return sizes


@pytest.mark.integration
def test_assessment_stores_its_match_keys_on_the_image(store: Store) -> None:
    _assessed(store, "sha256:" + "a" * 64)
    assert store.images.get(REGISTRY, "app", "sha256:" + "a" * 64).match_keys == encode_match_keys(
        SIGNED)


@pytest.mark.integration
def test_row_updates_go_in_transactions_of_100(store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    digests = [f"sha256:{number:064x}" for number in range(150)]
    for digest in digests:
        _assessed(store, digest)
    sizes = _count_transactions(store, monkeypatch)
    report = store.images.merge_rows(_updates(store, digests))
    assert ((len(report.applied), len(report.dropped)), sizes,
            {image.index_version for image in store.images.iter_all()}) == (
        (150, 0), [100, 50], {"v2"})


@pytest.mark.integration
def test_row_updates_carrying_findings_are_batched_by_size(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # 60 rows of ~80 KB on the wire each (base64): one 4 MiB request could not hold them.
    digests = [f"sha256:{number:064x}" for number in range(60)]
    for digest in digests:
        _assessed(store, digest)
    updates = [dataclasses.replace(update, changes={
        "index_version": "v2", "findings_doc_0": bytes([number]) * 60_000,
        **{f"findings_doc_{chunk}": b"" for chunk in range(1, 10)}})
        for number, update in enumerate(_updates(store, digests))]
    sizes = _count_transactions(store, monkeypatch)
    report = store.images.merge_rows(updates)
    entity = store.images.entity(REGISTRY, "app", digests[59])
    assert entity is not None
    assert (len(report.applied), sizes, entity["findings_doc_0"]) == (
        60, [38, 22], bytes([59]) * 60_000)


@pytest.mark.integration
def test_row_changed_since_read_is_updated_alone_when_still_the_same_assessment(
        store: Store) -> None:
    digests = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    for digest in digests:
        _assessed(store, digest)
    updates = _updates(store, digests)
    store.images.set_last_pulled(REGISTRY, "app", digests[0], T0 + timedelta(days=1))
    assert (_outcome(store.images.merge_rows(updates)),
            [store.images.get(REGISTRY, "app", digest).index_version for digest in digests]) == (
        (["a", "b"], []), ["v2", "v2"])


@pytest.mark.integration
def test_row_reassessed_since_read_is_not_updated(store: Store) -> None:
    digests = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    for digest in digests:
        _assessed(store, digest)
    updates = _updates(store, digests)
    store.save_assessment(REGISTRY, "app", digests[0], Assessment(
        status=AssessmentStatus.HEALTHY, assessed_at=T0 + timedelta(hours=1),
        index_version="v3", scan_id="s2"))
    assert (_outcome(store.images.merge_rows(updates)),
            [store.images.get(REGISTRY, "app", digest).index_version for digest in digests]) == (
        (["b"], ["a"]), ["v3", "v2"])


@pytest.mark.integration
def test_finished_scans_are_recorded_in_batches(store: Store) -> None:
    records = [ScanRecord(id=new_scan_id(T0, unique=f"rescan/{number}"), registry=REGISTRY,
                          repository="app", digest=f"sha256:{number:064x}",
                          trigger=ScanTrigger.RESCAN, started=T0,
                          finished=T0 + timedelta(seconds=3), outcome=AssessmentStatus.HEALTHY)
               for number in range(120)]
    written = store.scans.record_finished(records)
    stored = store.scans.get(records[7].id)
    assert (written, stored) == (120, ScanRecord(
        id=records[7].id, registry=REGISTRY, repository="app", digest=f"sha256:{7:064x}",
        trigger=ScanTrigger.RESCAN, started=T0, finished=T0 + timedelta(seconds=3),
        duration_seconds=3.0, outcome=AssessmentStatus.HEALTHY))


def test_inventory_copy_too_large_for_the_row_is_left_to_the_blob() -> None:
    incompressible = random.Random(3).randbytes(200_000)
    assert inventory_columns(incompressible, previous_chunks=2) == {
        "inventory_n": 0, "inventory_0": b"", "inventory_1": b""}


def test_inventory_copy_is_zstd_of_the_blob_bytes() -> None:
    columns = inventory_columns(b'{"schema": 1}')
    assert (columns["inventory_n"], zstandard.ZstdDecompressor().decompress(
        columns["inventory_0"])) == (1, b'{"schema": 1}')


def _listed(store: Store, digests: list[str]) -> dict[str, tuple[ImageRecord, str]]:
    """Assess ``digests``; the rows and ETags the rescan's listing then reads."""
    for digest in digests:
        _assessed(store, digest)
    return {image.digest: (image, etag) for image, etag in store.images.iter_with_etags()}


@pytest.mark.integration
def test_rows_of_images_are_what_the_listing_reads(store: Store) -> None:
    digests = [f"sha256:{shard}{number:063x}" for shard in "0f" for number in range(5)]
    listed = _listed(store, digests)
    store.images.mark_deleted(REGISTRY, "app", digests[2], T0 + timedelta(days=1))
    asked = [*((REGISTRY, "app", digest) for digest in digests),
             (REGISTRY, "app", "sha256:" + "e" * 64)]  # no such image
    rows = store.images.rows_with_etags(asked)
    assert rows == {(REGISTRY, "app", digest): listed[digest]
                    for digest in digests if digest != digests[2]}


@pytest.mark.integration
def test_rows_spread_thinly_over_a_range_are_read_one_by_one(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = [f"sha256:0{number:063x}" for number in range(12)]
    listed = _listed(store, digests)
    reads = mock.Mock(wraps=store.images.table.get_entity)
    monkeypatch.setattr(store.images.table, "get_entity", reads)
    # 2 images asked for at both ends of 12 rows: the range holds 6 rows per image asked
    # for (more than SPARSE_RANGE), so after 8 rows the last image is read on its own.
    asked = [(REGISTRY, "app", digests[0]), (REGISTRY, "app", digests[11])]
    rows = store.images.rows_with_etags(asked)
    assert (rows, reads.call_count) == ({key: listed[key[2]] for key in asked}, 1)
