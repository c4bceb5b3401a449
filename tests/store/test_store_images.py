from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scanning.errors import NotFound
from scanning.model import AssessmentStatus, FindingCounts, PlatformFindings, Severity
from scanning.store import Assessment, ImageFilter, ImageRecord, Store, TagEvent
from scanning.store.images import image_keys
from scanning.store.keys import encode_key
from tests.store.factories import make_finding

pytestmark = pytest.mark.integration

REGISTRY = "myacr.azurecr.io"
REPOSITORY = "team/sub/app"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_record_push_creates_the_image(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0,
                             tag="v1", media_type="application/vnd.oci.image.manifest.v1+json",
                             platforms=("linux/amd64",), size_bytes=5_000_000_000)
    assert store.images.get(REGISTRY, REPOSITORY, DIGEST_A) == ImageRecord(
        registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, tags=("v1",),
        platforms=("linux/amd64",), media_type="application/vnd.oci.image.manifest.v1+json",
        size_bytes=5_000_000_000, first_pushed=T0, last_pushed=T0, counts=FindingCounts(),
    )


def test_second_push_keeps_first_pushed_and_adds_tag(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0,
                             tag="v1")
    later = T0 + timedelta(days=1)
    record = store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A,
                                      at=later, tag="latest")
    assert (record.first_pushed, record.last_pushed, record.tags) == (T0, later, ("latest", "v1"))


def test_a_scan_asked_for_is_not_a_push(store: Store) -> None:
    """``POST scans`` records the tag and the scan state, never a push time: an image pushed
    before keeps its times, and one first seen that way has none (when it was pushed is not
    known)."""
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0,
                             tag="1.0")
    asked = store.images.record_push(registry=REGISTRY, repository=REPOSITORY,
                                     digest=DIGEST_A, at=T0 + timedelta(days=3), tag="stable",
                                     pushed=False)
    unseen = store.images.record_push(registry=REGISTRY, repository=REPOSITORY,
                                      digest=DIGEST_B, at=T0, tag="2.0", pushed=False)
    assert [(image.first_pushed, image.last_pushed, image.tags) for image in (asked, unseen)] == [
        (T0, T0, ("1.0", "stable")), (None, None, ("2.0",))]


def test_moved_tag_leaves_old_image_with_history(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0,
                             tag="latest")
    later = T0 + timedelta(hours=1)
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_B, at=later,
                             tag="latest")
    old = store.images.get(REGISTRY, REPOSITORY, DIGEST_A)
    new = store.images.get(REGISTRY, REPOSITORY, DIGEST_B)
    assert (old.tags, new.tags) == ((), ("latest",))
    assert store.images.tag_history(REGISTRY, REPOSITORY, "latest") == (
        TagEvent(registry=REGISTRY, repository=REPOSITORY, tag="latest", digest=DIGEST_B,
                 at=later),
        TagEvent(registry=REGISTRY, repository=REPOSITORY, tag="latest", digest=DIGEST_A, at=T0),
    )


def test_repeated_push_event_adds_no_tag_history(store: Store) -> None:
    for _ in range(2):
        store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A,
                                 at=T0, tag="v1")
    assert len(store.images.tag_history(REGISTRY, REPOSITORY)) == 1


def test_mark_deleted_keeps_results_and_hides_from_list(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0)
    store.save_assessment(REGISTRY, REPOSITORY, DIGEST_A, Assessment(
        status=AssessmentStatus.UNHEALTHY, assessed_at=T0,
        results=(PlatformFindings(platform="linux/amd64", findings=(make_finding(),)),)))
    deleted = store.images.mark_deleted(REGISTRY, REPOSITORY, DIGEST_A, T0 + timedelta(days=2))
    assert (deleted.deleted, deleted.deleted_at, deleted.status) == (
        True, T0 + timedelta(days=2), AssessmentStatus.UNHEALTHY)
    assert store.images.list().items == ()
    assert store.images.list(ImageFilter(include_deleted=True)).items == (deleted,)
    assert len(store.findings_of(REGISTRY, REPOSITORY, DIGEST_A)[0].findings) == 1


def test_mark_deleted_of_unknown_image_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.images.mark_deleted(REGISTRY, REPOSITORY, DIGEST_A, T0)


def test_list_images_pages_across_more_than_page_size(store: Store) -> None:
    digests = [f"sha256:{index:064x}" for index in range(7)]
    for digest in digests:
        store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=digest, at=T0)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = store.images.list(page_size=3, token=token)
        seen.extend(record.digest for record in page.items)
        pages += 1
        if page.next_token is None:
            break
        token = page.next_token
    assert (seen, pages) == (digests, 3)


def test_list_images_filters_by_severity_at_or_above(store: Store) -> None:
    for digest, severity in ((DIGEST_A, Severity.CRITICAL), (DIGEST_B, Severity.LOW)):
        store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=digest, at=T0)
        store.save_assessment(REGISTRY, REPOSITORY, digest, Assessment(
            status=AssessmentStatus.UNHEALTHY, assessed_at=T0,
            results=(PlatformFindings(platform="linux/amd64",
                                      findings=(make_finding(severity=severity),)),)))
    page = store.images.list(ImageFilter(severity=Severity.HIGH))
    assert [record.digest for record in page.items] == [DIGEST_A]


def test_list_images_filters_by_registry_and_status(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0)
    store.images.record_push(registry="localhost:5000", repository=REPOSITORY, digest=DIGEST_B,
                             at=T0)
    store.save_assessment("localhost:5000", REPOSITORY, DIGEST_B,
                          Assessment(status=AssessmentStatus.HEALTHY, assessed_at=T0))
    page = store.images.list(ImageFilter(registry="localhost:5000",
                                         status=AssessmentStatus.HEALTHY))
    assert [(record.registry, record.digest) for record in page.items] == [
        ("localhost:5000", DIGEST_B)]


def test_find_by_digest_returns_every_registry(store: Store) -> None:
    for registry in (REGISTRY, "localhost:5000"):
        store.images.record_push(registry=registry, repository=REPOSITORY, digest=DIGEST_A, at=T0)
    assert sorted(record.registry for record in store.images.find_by_digest(DIGEST_A)) == [
        "localhost:5000", REGISTRY]


def test_record_pull_sets_last_pulled_and_counts_int64(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A, at=T0)
    store.record_pull(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A,
                      at=T0 + timedelta(days=3), count=3_000_000_000)
    entry = store.record_pull(registry=REGISTRY, repository=REPOSITORY, digest=DIGEST_A,
                              at=T0 + timedelta(days=1))
    assert (entry.count, entry.last_pulled, entry.first_pulled) == (
        3_000_000_001, T0 + timedelta(days=3), T0 + timedelta(days=1))
    assert store.images.get(REGISTRY, REPOSITORY, DIGEST_A).last_pulled == T0 + timedelta(days=3)


@pytest.mark.parametrize(("digest", "shard"), [
    ("sha256:" + "3f" * 32, "3"), ("sha256:" + "A0" * 32, "a"), ("sha512:" + "e" * 128, "e"),
    ("not-a-digest", "b"), ("sha256:", "9"), ("sha256:zz", "3")])
def test_images_spread_over_16_partitions_by_digest(digest: str, shard: str) -> None:
    assert image_keys(REGISTRY, REPOSITORY, digest) == (
        f"myacr.azurecr.io|{shard}", f"{encode_key(digest)}|team~2Fsub~2Fapp")


def test_registry_listing_covers_every_shard_and_no_other_registry(store: Store) -> None:
    digests = [f"sha256:{first}" + "0" * 63 for first in "0f7"]
    for digest in digests:
        store.images.record_push(registry=REGISTRY, repository=REPOSITORY, digest=digest, at=T0)
    store.images.record_push(registry=REGISTRY + "x", repository=REPOSITORY,
                             digest=digests[0], at=T0)
    listed = store.images.list(ImageFilter(registry=REGISTRY)).items
    assert [(image.registry, image.digest) for image in listed] == [
        (REGISTRY, digests[0]), (REGISTRY, digests[2]), (REGISTRY, digests[1])]


def test_one_digest_in_two_repositories_is_two_images(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository="dev/app", digest=DIGEST_A, at=T0,
                             tag="1.0")
    store.images.record_push(registry=REGISTRY, repository="prod/app", digest=DIGEST_A,
                             at=T0 + timedelta(hours=1), tag="stable")
    store.images.mark_deleted(REGISTRY, "prod/app", DIGEST_A, T0 + timedelta(hours=2))
    dev = store.images.get(REGISTRY, "dev/app", DIGEST_A)
    prod = store.images.get(REGISTRY, "prod/app", DIGEST_A)
    assert ((dev.tags, dev.deleted, dev.last_pushed), (prod.tags, prod.deleted),
            [image.repository for image in store.images.repositories_of(REGISTRY, DIGEST_A)],
            [image.repository for image in store.images.find_by_digest(DIGEST_A)],
            [image.repository for image in store.images.list(
                ImageFilter(repository="dev/app")).items]) == (
        (("1.0",), False, T0), (("stable",), True), ["dev/app", "prod/app"],
        ["dev/app", "prod/app"], ["dev/app"])


def test_a_digest_prefix_is_not_another_digests_repositories(store: Store) -> None:
    store.images.record_push(registry=REGISTRY, repository="a", digest=DIGEST_A, at=T0)
    store.images.record_push(registry=REGISTRY, repository="b", digest=DIGEST_A + "0", at=T0)
    assert [image.digest for image in store.images.repositories_of(REGISTRY, DIGEST_A)] == [
        DIGEST_A]
