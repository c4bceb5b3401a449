from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import zstandard
from azure.data.tables import UpdateMode

from scanning.errors import StoreError
from scanning.model import (
    AssessmentStatus,
    AssessmentSummary,
    FixStatus,
    PlatformFindings,
    Severity,
)
from scanning.store import (
    Assessment,
    BlobKind,
    FindingFilter,
    FindingHit,
    Store,
)
from scanning.store import findings as findings_module
from scanning.store.findings import encode_findings
from scanning.store.images import RowUpdate, image_keys
from tests.store.factories import make_finding

pytestmark = pytest.mark.integration

REGISTRY = "localhost:5000"
REPOSITORY = "team/app"
DIGEST = "sha256:" + "c" * 64
T0 = datetime(2025, 3, 1, tzinfo=UTC)
OLD = (make_finding("CVE-2024-0001", "openssl"), make_finding("CVE-2024-0002", "zlib"))
NEW = (make_finding("CVE-2024-0003", "curl", severity=Severity.CRITICAL),)


def assessment(findings: tuple, at: datetime = T0, index_version: str = "i1") -> Assessment:
    return Assessment(
        status=AssessmentStatus.UNHEALTHY if findings else AssessmentStatus.HEALTHY,
        assessed_at=at, analyzer_version="a1", index_version=index_version, scan_id="s1",
        results=(PlatformFindings(platform="linux/amd64", manifest_digest="sha256:" + "d" * 64,
                                  findings=findings),),
    )


def stored(store: Store) -> tuple:
    return tuple(finding for result in store.findings_of(REGISTRY, REPOSITORY, DIGEST)
                 for finding in result.findings)


def findings_blobs(store: Store) -> list[str]:
    return store.blobs.names(BlobKind.FINDINGS, "")


def big(count: int, seed: int = 1) -> tuple:
    """Findings whose document cannot fit an image row: incompressible descriptions."""
    rng = random.Random(seed)
    return tuple(dataclasses.replace(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}"),
                                     description=rng.randbytes(14_000).hex())
                 for index in range(count))


@pytest.fixture()
def pushed(store: Store) -> Store:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, at=T0)
    return store


def test_saved_findings_read_back_whole(pushed: Store) -> None:
    finding = dataclasses.replace(make_finding(aliases=("GHSA-xxxx-yyyy-zzzz",), score=9.8),
                                  extra={"note": "n"})
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment((finding,)))
    assert pushed.findings_of(REGISTRY, REPOSITORY, DIGEST) == (PlatformFindings(
        platform="linux/amd64", manifest_digest="sha256:" + "d" * 64, findings=(finding,)),)


def test_save_updates_image_status_counts_and_versions(pushed: Store) -> None:
    record = pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(
        (*OLD, make_finding("CVE-2024-0009", disabled_by="rule-1", severity=Severity.LOW))))
    assert (record.status, record.counts.active[Severity.HIGH],
            record.counts.disabled[Severity.LOW], record.analyzer_version,
            record.index_version, record.last_scan_id, record.assessed_at) == (
        AssessmentStatus.UNHEALTHY, 2, 1, "a1", "i1", "s1", T0)


def test_findings_live_in_the_image_row(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    record = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert (record.stored_findings.total, record.stored_findings.document_chunks,
            record.stored_findings.blob, record.stored_findings.keys_chunks,
            findings_blobs(pushed)) == (2, 1, "", 1, [])


def test_new_assessment_replaces_the_old_in_one_row_write(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    writes: list[str] = []
    update = pushed.images.table.update_entity

    def counted(*args: object, **kwargs: object) -> object:
        writes.append("update")
        return update(*args, **kwargs)  # type: ignore[arg-type]

    pushed.images.table.update_entity = counted  # type: ignore[method-assign]
    record = pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST,
                                    assessment(NEW, T0 + timedelta(days=1)))
    assert (writes, stored(pushed), record.counts.active[Severity.CRITICAL],
            record.counts.active[Severity.HIGH]) == (["update"], NEW, 1, 0)


def test_document_too_large_for_the_row_goes_to_a_blob_and_back(pushed: Store) -> None:
    large = big(60)
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(large))
    record = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert (stored(pushed), record.stored_findings.document_chunks,
            findings_blobs(pushed)) == (large, 0, [record.stored_findings.blob])
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    assert (stored(pushed), pushed.images.get(REGISTRY, REPOSITORY, DIGEST).stored_findings.blob,
            findings_blobs(pushed)) == (NEW, "", [])


def test_reader_meeting_a_deleted_blob_reads_the_row_again(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(big(60)))
    read_document = pushed.findings._document
    calls: list[int] = []

    def racing_read(*args: object) -> bytes:
        if not calls:  # a writer replaces the assessment right after the reader's row read
            calls.append(1)
            pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST,
                                   assessment(NEW, T0 + timedelta(days=1)))
        return read_document(*args)  # type: ignore[arg-type]

    pushed.findings._document = racing_read  # type: ignore[method-assign]
    assert stored(pushed) == NEW


def test_older_assessment_does_not_replace_newer(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    result = pushed.findings.save(REGISTRY, REPOSITORY, DIGEST, assessment(big(60), T0))
    assert (result.applied, stored(pushed), findings_blobs(pushed)) == (False, NEW, [])


def test_unchanged_findings_keep_their_generation(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    before = pushed.images.get(REGISTRY, REPOSITORY, DIGEST).current_generation
    record = pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(
        OLD, T0 + timedelta(days=7), index_version="i2"))
    assert (record.current_generation, record.index_version, record.assessed_at,
            stored(pushed)) == (before, "i2", T0 + timedelta(days=7), OLD)


def test_fewer_chunks_leave_no_stale_columns(pushed: Store) -> None:
    many = tuple(dataclasses.replace(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}"),
                                     description=random.Random(index).randbytes(400).hex())
                 for index in range(250))
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(many))
    chunks_before = pushed.images.get(REGISTRY, REPOSITORY, DIGEST).stored_findings.document_chunks
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    entity = pushed.images.entity(REGISTRY, REPOSITORY, DIGEST)
    assert entity is not None
    assert (chunks_before, stored(pushed), sorted(
        name for name in entity if name.startswith("findings_doc_"))) == (
        2, NEW, ["findings_doc_0", "findings_doc_n"])


def test_rescan_merge_replaces_findings_and_empties_unused_chunks(pushed: Store) -> None:
    many = tuple(dataclasses.replace(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}"),
                                     description=random.Random(index).randbytes(400).hex())
                 for index in range(250))
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(many))
    ((image, etag),) = list(pushed.images.iter_with_etags())
    new = assessment(NEW, T0 + timedelta(days=1))
    changes = pushed.findings.rescan_changes(image, new, encode_findings(DIGEST, new.results))
    assert changes is not None
    report = pushed.images.merge_rows([RowUpdate(
        registry=REGISTRY, repository=REPOSITORY, digest=DIGEST, etag=etag, changes=changes,
        expected={})])
    entity = pushed.images.entity(REGISTRY, REPOSITORY, DIGEST)
    assert entity is not None
    assert (len(report.applied), stored(pushed), entity["findings_doc_n"],
            entity["findings_doc_1"], pushed.images.get(REGISTRY, REPOSITORY, DIGEST).status) == (
        1, NEW, 1, b"", AssessmentStatus.UNHEALTHY)


def test_rescan_merge_is_refused_for_a_document_in_a_blob(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(big(60)))
    ((image, _etag),) = list(pushed.images.iter_with_etags())
    new = assessment(NEW, T0 + timedelta(days=1))
    assert pushed.findings.rescan_changes(
        image, new, encode_findings(DIGEST, new.results)) is None


def test_stale_orphan_blob_is_collected(pushed: Store) -> None:
    orphan = pushed.findings.blob_name(REGISTRY, REPOSITORY, DIGEST,
                                       "g00000000000000001deadbeef")
    pushed.blobs.put(BlobKind.FINDINGS, orphan, b"left by a writer that died")
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST,
                           assessment(big(60)))
    image = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert findings_blobs(pushed) == [image.stored_findings.blob]


def test_corrupt_document_is_a_store_error(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    partition_key, row_key = image_keys(REGISTRY, REPOSITORY, DIGEST)
    pushed.images.table.upsert_entity({
        "PartitionKey": partition_key, "RowKey": row_key, "findings_doc_0": b"not zstd"},
        mode=UpdateMode.MERGE)
    with pytest.raises(StoreError, match=r"findings document of .* is unreadable"):
        pushed.findings_of(REGISTRY, REPOSITORY, DIGEST)


def test_document_inflating_without_bound_is_refused(pushed: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    monkeypatch.setattr(findings_module, "MAX_DOCUMENT_JSON", 100)
    with pytest.raises(StoreError, match="inflates beyond 100 bytes"):
        pushed.findings_of(REGISTRY, REPOSITORY, DIGEST)


def test_long_description_is_cut_to_fit_a_property(pushed: Store) -> None:
    finding = dataclasses.replace(make_finding(), description="\U0001f600" * 40_000)
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment((finding,)))
    description = stored(pushed)[0].description
    assert (description.endswith(" [truncated]"), len(description.encode("utf-16-le")) <= 60_000
            ) == (True, True)


def _second_image(store: Store) -> str:
    digest = "sha256:" + "e" * 64
    store.images.record_push(registry=REGISTRY, repository="other/app", digest=digest, at=T0)
    store.save_assessment(REGISTRY, "other/app", digest, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0, results=(PlatformFindings(
            platform="linux/arm64", findings=(
                make_finding("DSA-1", "openssl", aliases=("CVE-2024-0001",),
                             fix_status=FixStatus.NOT_FIXED),)),)))
    return digest


def test_query_findings_by_cve_matches_id_and_alias(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    other = _second_image(pushed)
    page = pushed.query_findings(FindingFilter(vulnerability_id="CVE-2024-0001"))
    assert sorted((hit.digest, hit.finding.id, hit.platform) for hit in page.items) == sorted([
        (DIGEST, "CVE-2024-0001", "linux/amd64"), (other, "DSA-1", "linux/arm64")])


def test_query_findings_by_cve_ignores_case(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    other = _second_image(pushed)
    page = pushed.query_findings(FindingFilter(vulnerability_id="cve-2024-0001"))
    assert sorted((hit.digest, hit.finding.id) for hit in page.items) == sorted([
        (DIGEST, "CVE-2024-0001"), (other, "DSA-1")])


def test_query_findings_by_package_ignores_case(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    page = pushed.query_findings(FindingFilter(package="ZLib"))
    assert [(hit.digest, hit.finding.id) for hit in page.items] == [(DIGEST, "CVE-2024-0002")]


def test_query_findings_by_package_fix_status_and_repository(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    other = _second_image(pushed)
    page = pushed.query_findings(FindingFilter(
        package="openssl", fix_statuses=frozenset({FixStatus.NOT_FIXED}), repository="other/app"))
    assert page.items == (FindingHit(
        registry=REGISTRY, repository="other/app", digest=other, platform="linux/arm64",
        manifest_digest="", finding=make_finding("DSA-1", "openssl", aliases=("CVE-2024-0001",),
                                                 fix_status=FixStatus.NOT_FIXED)),)


def test_query_findings_by_severity_keeps_those_at_or_above(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(
        (*OLD, make_finding("CVE-2024-0003", "curl", severity=Severity.CRITICAL),
         make_finding("CVE-2024-0004", "bash", severity=Severity.LOW))))
    page = pushed.query_findings(FindingFilter(severity=Severity.HIGH))
    assert [hit.finding.id for hit in page.items] == [
        "CVE-2024-0001", "CVE-2024-0002", "CVE-2024-0003"]


def test_query_findings_sees_only_the_current_assessment(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(NEW, T0 + timedelta(days=1)))
    page = pushed.query_findings(FindingFilter())
    assert [hit.finding.id for hit in page.items] == ["CVE-2024-0003"]


def test_query_findings_pages_across_images_without_loss_or_repeat(pushed: Store) -> None:
    many = tuple(make_finding(f"CVE-2024-{index:04d}", f"pkg{index}") for index in range(23))
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(many))
    other = _second_image(pushed)
    third = "sha256:" + "f" * 64
    pushed.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=third, at=T0)
    pushed.save_assessment(REGISTRY, REPOSITORY, third, assessment(()))
    seen: list[tuple[str, str]] = []
    token: str | None = None
    while True:
        page = pushed.query_findings(FindingFilter(), page_size=5, token=token)
        seen.extend((hit.digest, hit.finding.id) for hit in page.items)
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == [*((DIGEST, finding.id) for finding in many), (other, "DSA-1")]


def test_query_findings_skips_deleted_images_unless_asked(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    pushed.images.mark_deleted(REGISTRY, REPOSITORY, DIGEST, T0 + timedelta(days=1))
    assert (len(pushed.query_findings(FindingFilter()).items),
            len(pushed.query_findings(FindingFilter(include_deleted_images=True)).items)) == (0, 2)


def test_query_findings_reads_keys_from_the_document_when_too_large_for_the_row(
        pushed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(findings_module, "MAX_KEYS_CHUNKS", 0)
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(OLD))
    record = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    page = pushed.query_findings(FindingFilter(package="zlib"))
    assert (record.stored_findings.keys_external, [hit.finding.id for hit in page.items]) == (
        True, ["CVE-2024-0002"])


def test_previous_summary_comes_from_the_keys(pushed: Store) -> None:
    pushed.save_assessment(REGISTRY, REPOSITORY, DIGEST, assessment(
        (*OLD, make_finding("CVE-2024-0009", disabled_by="rule-1"))))
    record = pushed.images.get(REGISTRY, REPOSITORY, DIGEST)
    assert pushed.findings.previous_summary(record) == AssessmentSummary(
        status=AssessmentStatus.UNHEALTHY, active_finding_keys=frozenset({
            "CVE-2024-0001|openssl|3.0.1-1", "CVE-2024-0002|zlib|3.0.1-1"}))


def test_concurrent_saves_leave_exactly_one_complete_assessment(pushed: Store) -> None:
    sets = [tuple(make_finding(f"CVE-2024-{run}{index:03d}", f"p{index}") for index in range(30))
            for run in range(4)]
    threads = [threading.Thread(target=pushed.save_assessment, args=(
        REGISTRY, REPOSITORY, DIGEST, assessment(findings, T0 + timedelta(minutes=run))))
        for run, findings in enumerate(sets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (stored(pushed), findings_blobs(pushed)) == (sets[3], [])


def test_document_and_keys_bytes_are_fixed() -> None:
    # The fingerprint is a SHA-256 of these bytes: a change in how entries are written (enum
    # members, key order, sorting) would re-write every stored image once. Two platforms, two
    # findings out of order and one repeated (dropped) on the first.
    first = make_finding("CVE-2024-0002", "zlib", severity=Severity.CRITICAL, score=9.8,
                         aliases=("GHSA-xxxx-yyyy-zzzz",))
    second = make_finding("CVE-2024-0001", "openssl", fix_status=FixStatus.NOT_FIXED,
                          severity=Severity.LOW, disabled_by="rule-1")
    encoded = encode_findings(DIGEST, [
        PlatformFindings(platform="linux/amd64", findings=(first, second, first)),
        PlatformFindings(platform="linux/arm64", findings=(second,), manifest_digest="sha256:m",
                         status=AssessmentStatus.HEALTHY,
                         analysis=AssessmentStatus.HEALTHY)])
    entry = (
        '{{"id":"{id}","aliases":{aliases},"package":"{package}","installed_version":"3.0.1-1",'
        '"package_type":"deb","purl":"pkg:deb/debian/{package}@3.0.1-1",'
        '"source_package":"{package}","fixed_version":"{fixed}","fix_status":"{fix}",'
        '"severity":"{severity}","vendor_severity":"","cvss":{cvss},"remediation":"Upgrade",'
        '"summary":"{id} in {package}","description":"details",'
        '"published":"2024-01-01T00:00:00Z","modified":"2024-02-01T00:00:00Z",'
        '"references":["https://example.invalid/advisory"],"layer_digest":"sha256:{layer}",'
        '"layer_instruction":"RUN apt-get install","path":"/var/lib/dpkg/status",'
        '"match":["Debian:12","{package}","3.0.1-1","introduced 0, fixed 3.0.2-1"],'
        '"disabled_by":"{rule}"}}')
    low = entry.format(id="CVE-2024-0001", aliases="[]", package="openssl", fixed="",
                       fix="not_fixed", severity="low", cvss="[]", layer="a" * 64,
                       rule="rule-1")
    critical = entry.format(
        id="CVE-2024-0002", aliases='["GHSA-xxxx-yyyy-zzzz"]', package="zlib",
        fixed="3.0.2-1", fix="fixed", severity="critical", layer="a" * 64, rule="",
        cvss='[["3.1","CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",9.8,"critical"]]')
    document = zstandard.ZstdDecompressor().decompress(encoded.document).decode()
    keys = zstandard.ZstdDecompressor().decompress(encoded.keys).decode()
    assert document == (
        '{"format":1,"platforms":['
        f'{{"platform":"linux/amd64","manifest_digest":"","findings":[{low},{critical}]}},'
        f'{{"platform":"linux/arm64","manifest_digest":"sha256:m","findings":[{low}],'
        '"analysis":"healthy","status":"healthy"}]}')
    assert keys == (
        '[[0,"CVE-2024-0001",[],"openssl","openssl","3.0.1-1",2,"not_fixed",true],'
        '[0,"CVE-2024-0002",["GHSA-xxxx-yyyy-zzzz"],"zlib","zlib","3.0.1-1",5,"fixed",false],'
        '[1,"CVE-2024-0001",[],"openssl","openssl","3.0.1-1",2,"not_fixed",true]]')
    assert (encoded.total, encoded.fingerprint) == (
        3, hashlib.sha256(document.encode()).hexdigest())
