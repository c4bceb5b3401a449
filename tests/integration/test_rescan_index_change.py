"""The weekly rescan touches only what an index change can change (Azurite, service level):
an image none of whose packages the change touches keeps its findings and only has its
row's index version moved, in a batched transaction; an image whose package it touches is
re-matched and gets the new finding."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode

from scanning.advisories.index import compile_index, write_index
from scanning.analyzers import analyzer_set_version
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.layer_types import LayerInfo
from scanning.local.services import Azurite
from scanning.matcher_version import matcher_version
from scanning.matching import MatchResult
from scanning.model import AssessmentStatus, OSInfo, Package, PackageType, Platform
from scanning.service import evaluation, rematch
from scanning.service.context import Services
from scanning.service.evaluation import inventory_digest, save_inventories
from scanning.service.rescan import rescan_pulled
from scanning.store import Store
from scanning.store import transactions as table_transactions
from scanning.store.advisory_index import publish_index
from scanning.store.images import image_keys
from scanning.store.match_keys import MatchKeys, encode_match_keys, read_match_keys

pytestmark = pytest.mark.integration

REGISTRY = "myacr.azurecr.io"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "d" * 64
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
BUILT = datetime(2025, 3, 1, tzinfo=UTC)


def _record(advisory_id: str, name: str, fixed: str,
            modified: str = "2025-01-01T00:00:00Z") -> dict[str, Any]:
    return {"id": advisory_id, "modified": modified, "summary": advisory_id, "affected": [{
        "package": {"ecosystem": "PyPI", "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
    }]}


BASE = [_record("PYSEC-1", "requests", "2.1.0")]


@dataclass(slots=True)
class Rescans:
    services: Services
    folder: Path
    transactions: list[str]

    def publish(self, records: list[dict[str, Any]], name: str) -> None:
        path = self.folder / f"{name}.idx"
        write_index(compile_index(records, built=BUILT), path)
        publish_index(self.services.store.clients.blob_service(), path)
        self.services.index.invalidate()

    def findings(self) -> list[tuple[str, str]]:
        return [(finding.id, finding.package) for result in
                self.services.store.findings_of(REGISTRY, REPOSITORY,
                                                DIGEST) for finding in result.findings]


@pytest.fixture
def rescans(azurite: Azurite, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Rescans]:
    """An image with requests 2.0.0 and django 4.0, pulled, assessed against BASE."""
    prefix = "r" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("ADVISORY_CONTAINER", f"{prefix}-advisories")
    monkeypatch.setenv("NOTIFY_QUEUE_NAME", f"{prefix}-notifications")
    store = Store.from_connection_string(azurite.connection_string, prefix=prefix)
    services = Services.create(store)
    packages = tuple(Package(type=PackageType.PYPI, name=name, version=version,
                             purl=f"pkg:pypi/{name}@{version}", path=f"site-packages/{name}")
                     for name, version in (("requests", "2.0.0"), ("django", "4.0")))
    inventory = ImageInventory(
        reference=f"{REGISTRY}/{REPOSITORY}@{DIGEST}", image_digest=DIGEST,
        manifest_digest=DIGEST, config_digest=DIGEST, platform=Platform(os="linux",
                                                                        architecture="amd64"),
        analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
        os=OSInfo(id="alpine", version_id="3.19.1"), packages=packages,
        layers=(LayerInfo(digest="sha256:" + "1" * 64, size=10),))
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST,
                             at=NOW - timedelta(days=20), tag="v1")
    save_inventories(services, REGISTRY, DIGEST, (inventory,))
    store.record_pull(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST,
                      at=NOW - timedelta(days=2))
    transactions: list[str] = []
    counted_tables = {"images": store.images.table, "scans": store.scans.table}
    submit = table_transactions.submit

    def counted(table: TableClient, operations: Any) -> Any:
        transactions.extend(name for name, counted_table in counted_tables.items()
                            if counted_table is table)
        return submit(table, operations)

    monkeypatch.setattr(table_transactions, "submit", counted)
    result = Rescans(services=services, folder=tmp_path, transactions=transactions)
    result.publish(BASE, "base")
    rescan_pulled(services, now=NOW - timedelta(days=7))
    transactions.clear()
    yield result
    store.drop()


def test_change_touching_no_package_of_the_image_only_moves_its_index_version(
        rescans: Rescans) -> None:
    store = rescans.services.store
    before = store.images.get(REGISTRY, REPOSITORY, DIGEST)
    rescans.publish([*BASE, _record("PYSEC-2", "flask", "3.0.0")], "flask")
    report = rescan_pulled(rescans.services, now=NOW)
    after = store.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert ((report.rematched, report.unaffected, report.matched, report.rewritten),
            rescans.transactions, after.current_generation == before.current_generation,
            after.index_version == rescans.services.index.get()[1] != before.index_version,
            after.assessed_at, rescans.findings()) == (
        (1, 1, 0, 0), ["images", "scans"], True, True, NOW, [("PYSEC-1", "requests")])


def test_change_touching_a_package_of_the_image_rematches_it(rescans: Rescans) -> None:
    rescans.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan_pulled(rescans.services, now=NOW)
    assert ((report.rematched, report.unaffected, report.matched, report.rewritten),
            rescans.transactions, sorted(rescans.findings())) == (
        (1, 0, 1, 1), ["images", "scans"], [("PYSEC-1", "requests"), ("PYSEC-3", "django")])


def test_rescans_record_one_history_row_per_image(rescans: Rescans) -> None:
    rescans.publish([*BASE, _record("PYSEC-2", "flask", "3.0.0")], "flask")
    rescan_pulled(rescans.services, now=NOW)
    history = rescans.services.store.scans.list().items
    assert [(scan.digest, scan.trigger.value, scan.outcome.value if scan.outcome else None)
            for scan in history] == [(DIGEST, "rescan", "unhealthy"),
                                     (DIGEST, "rescan", "unhealthy")]


def test_rescan_reads_the_row_copy_of_the_inventory_not_the_blob(rescans: Rescans) -> None:
    store = rescans.services.store
    store.blobs.put_inventory(REGISTRY, DIGEST, b'{"schema": "truncated')
    rescans.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan_pulled(rescans.services, now=NOW)
    image = store.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert ((report.rematched, report.matched, report.to_reanalyze),
            image.inventory_chunks, sorted(rescans.findings())) == (
        (1, 1, ()), 1, [("PYSEC-1", "requests"), ("PYSEC-3", "django")])


def test_unreadable_inventory_is_returned_for_a_new_analysis(rescans: Rescans) -> None:
    store = rescans.services.store
    store.blobs.put_inventory(REGISTRY, DIGEST, b'{"schema": "truncated')
    partition_key, row_key = image_keys(REGISTRY, REPOSITORY, DIGEST)
    store.images.table.upsert_entity({"PartitionKey": partition_key, "RowKey": row_key,
                                      "inventory_0": b"not zstd"}, mode=UpdateMode.MERGE)
    rescans.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan_pulled(rescans.services, now=NOW)
    assert ((report.rematched, report.failed),
            [(request.digest, request.trigger.value) for request in report.to_reanalyze],
            rescans.findings()) == ((0, 0), [(DIGEST, "rescan")], [("PYSEC-1", "requests")])


def _spy_parses(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each re-match read its inventory lean (``named_in``: lookups from the keys)."""
    lean: list[bool] = []
    parse = rematch.parse_inventories

    def spied(data: bytes, registry: str, digest: str, **options: Any) -> Any:
        lean.append(options.get("named_in") is not None)
        return parse(data, registry, digest, **options)

    monkeypatch.setattr(rematch, "parse_inventories", spied)
    return lean


def _row_keys(store: Store) -> MatchKeys:
    keys = read_match_keys(store.images.get(REGISTRY, REPOSITORY, DIGEST).match_keys)
    assert keys is not None
    return keys


def test_a_rematch_of_the_document_its_keys_name_takes_its_lookups_from_them(
        rescans: Rescans, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rescans.services.store
    document = inventory_digest(store.blobs.get_inventory(REGISTRY, DIGEST))
    listed = _row_keys(store)
    lean = _spy_parses(monkeypatch)
    rescans.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan_pulled(rescans.services, now=NOW)
    after = _row_keys(store)
    assert (listed.inventory, [lookup for lookup, _ in listed.signed]) == (
        document, [("PyPI", "django", "4.0"), ("PyPI", "requests", "2.0.0")])
    assert ((report.matched, report.rewritten), lean, sorted(rescans.findings()),
            after.inventory, [lookup for lookup, _ in after.signed]) == (
        (1, 1), [True], [("PYSEC-1", "requests"), ("PYSEC-3", "django")], document,
        [("PyPI", "django", "4.0"), ("PyPI", "requests", "2.0.0")])


def test_keys_naming_another_document_make_the_rematch_list_every_lookup(
        rescans: Rescans, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys listed from some other inventory (a scan that stored a new document and died
    # before its row): django's lookup is there, requests' is not.
    store = rescans.services.store
    document = inventory_digest(store.blobs.get_inventory(REGISTRY, DIGEST))
    stale = [(lookup, signature) for lookup, signature in _row_keys(store).signed
             if lookup[1] == "django"]
    partition_key, row_key = image_keys(REGISTRY, REPOSITORY, DIGEST)
    store.images.table.upsert_entity({"PartitionKey": partition_key, "RowKey": row_key,
                                      "match_keys": encode_match_keys(stale, "f" * 32)},
                                     mode=UpdateMode.MERGE)
    lean = _spy_parses(monkeypatch)
    rescans.publish([*BASE, _record("PYSEC-3", "django", "4.2")], "django")
    report = rescan_pulled(rescans.services, now=NOW)
    after = _row_keys(store)
    assert ((report.matched, report.rewritten), lean, sorted(rescans.findings()),
            after.inventory, [lookup for lookup, _ in after.signed]) == (
        (1, 1), [False], [("PYSEC-1", "requests"), ("PYSEC-3", "django")], document,
        [("PyPI", "django", "4.0"), ("PyPI", "requests", "2.0.0")])


def test_a_row_another_release_matched_is_re_matched_though_the_index_did_not_change(
        rescans: Rescans, monkeypatch: pytest.MonkeyPatch) -> None:
    # An older release whose matcher missed PYSEC-1 (say, a version comparison it got wrong)
    # re-assessed the image: healthy. The fixed release runs the next rescan against the
    # same index: the row names another matcher, so it is re-matched, not proven unaffected
    # by an index that did not change.
    store = rescans.services.store
    match = evaluation.match_inventory

    def missed(*args: Any, **options: Any) -> MatchResult:
        result = match(*args, **options)
        return MatchResult(status=AssessmentStatus.HEALTHY, findings=(), reason=result.reason,
                           warnings=result.warnings)

    with monkeypatch.context() as older_release:
        older_release.setattr(evaluation, "match_inventory", missed)
        older_release.setattr(rematch, "matcher_version", lambda: "0123456789abcdef")
        older = rescan_pulled(rescans.services, now=NOW - timedelta(days=1))
    before = store.images.get(REGISTRY, REPOSITORY, DIGEST)
    lean = _spy_parses(monkeypatch)
    fixed = rescan_pulled(rescans.services, now=NOW)
    after = store.images.get(REGISTRY, REPOSITORY, DIGEST)
    again = rescan_pulled(rescans.services, now=NOW + timedelta(days=7))
    assert ((older.unaffected, older.matched), before.status.value if before.status else None,
            before.matcher_version) == ((0, 1), "healthy", "0123456789abcdef")
    assert ((fixed.unaffected, fixed.matched, fixed.rewritten), lean,
            after.status.value if after.status else None, rescans.findings(),
            after.matcher_version, after.index_version == before.index_version) == (
        (0, 1, 1), [False], "unhealthy", [("PYSEC-1", "requests")], matcher_version(), True)
    assert (again.unaffected, again.matched) == (1, 0)
