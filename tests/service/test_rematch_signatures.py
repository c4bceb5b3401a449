"""``RescanRun`` keeps the signatures ``unaffected`` decoded for ``row_keys`` (no second
decode when the image is re-matched in the same process), bounded, and only when asked to."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

from scanning.advisories.index import AdvisoryIndex, IndexChange
from scanning.matcher_version import matcher_version
from scanning.model import AssessmentStatus
from scanning.service import rematch
from scanning.service.rematch import REMEMBERED_SIGNATURES, RescanRun
from scanning.store.images import ImageRecord
from scanning.store.match_keys import encode_match_keys

MOMENT = datetime(2026, 12, 1, tzinfo=UTC)
# Two lookups: the first under a key the index change names, the second under one it leaves.
SIGNED = ((("PyPI", "changed", "1.0"), "0123456789abcdef"), (("PyPI", "same", "2.0"), ""))


def still_signed(run: RescanRun, image: ImageRecord, etag: str = "") -> dict[Any, str]:
    """What a re-match keeps of the row's signatures."""
    return run.kept_signatures(image, run.row_keys(image, etag))


def run_with_change(*, remember: bool = True) -> RescanRun:
    index = AdvisoryIndex(built=MOMENT, sources=("test",))
    run = RescanRun(services=cast(Any, None), moment=MOMENT, index=index, index_version="new",
                    keys={}, rules=(), analyzer_version="a1", last_expiry=None,
                    remember=remember)
    # Known without storage: from index "old" to today's, the key of "changed" changed.
    run.changes["old"] = IndexChange(keys=frozenset({("PyPI", "changed")}))
    return run


def image(digest: str) -> ImageRecord:
    return ImageRecord(registry="r.io", repository="app", digest=digest,
                       status=AssessmentStatus.UNHEALTHY, assessed_at=MOMENT,
                       analyzer_version="a1", index_version="old",
                       matcher_version=matcher_version(), match_keys=encode_match_keys(SIGNED))


def count_decodes(monkeypatch: Any) -> list[bytes]:
    calls: list[bytes] = []
    decode = rematch.read_match_keys

    def counted(data: bytes) -> Any:
        calls.append(data)
        return decode(data)

    monkeypatch.setattr(rematch, "read_match_keys", counted)
    return calls


def test_an_affected_image_is_decoded_once_and_its_unchanged_signatures_kept(
        monkeypatch: Any) -> None:
    run = run_with_change()
    decodes = count_decodes(monkeypatch)
    affected = run.unaffected(image("sha256:a"), "etag-a")
    signed = still_signed(run, image("sha256:a"), "etag-a")
    assert (affected, signed, len(decodes), run.decoded) == (
        False, {("PyPI", "same", "2.0"): ""}, 1, {})


def test_without_the_etag_or_with_remembering_off_the_signatures_are_decoded_again(
        monkeypatch: Any) -> None:
    off = run_with_change(remember=False)
    on = run_with_change()
    decodes = count_decodes(monkeypatch)
    off.unaffected(image("sha256:a"), "etag-a")
    first = still_signed(off, image("sha256:a"), "etag-a")
    on.unaffected(image("sha256:b"), "etag-b")
    second = still_signed(on, image("sha256:b"))
    assert (first, second, len(decodes), off.decoded, sorted(on.decoded)) == (
        {("PyPI", "same", "2.0"): ""}, {("PyPI", "same", "2.0"): ""}, 4, {},
        [(("r.io", "app", "sha256:b"), "etag-b")])


def test_images_whose_rows_share_an_etag_keep_their_own_signatures() -> None:
    # Rows written in one transaction can carry the same ETag.
    run = run_with_change()
    other = ImageRecord(registry="r.io", repository="app", digest="sha256:b",
                        status=AssessmentStatus.UNHEALTHY, assessed_at=MOMENT,
                        analyzer_version="a1", index_version="old",
                        matcher_version=matcher_version(),
                        match_keys=encode_match_keys(((("PyPI", "other", "3.0"), "ff"),
                                                      (("PyPI", "changed", "1.0"), "00"))))
    run.unaffected(image("sha256:a"), "shared")
    run.unaffected(other, "shared")
    assert (still_signed(run, image("sha256:a"), "shared"), still_signed(run, other, "shared")) == (
        {("PyPI", "same", "2.0"): ""}, {("PyPI", "other", "3.0"): "ff"})


def test_the_remembered_signatures_are_bounded_oldest_first() -> None:
    run = run_with_change()
    for number in range(REMEMBERED_SIGNATURES + 3):
        run.unaffected(image(f"sha256:{number}"), f"etag-{number}")
    assert (len(run.decoded), next(iter(run.decoded))) == (
        REMEMBERED_SIGNATURES, (("r.io", "app", "sha256:3"), "etag-3"))


def test_with_nothing_changed_since_its_index_the_signatures_are_not_decoded(
        monkeypatch: Any) -> None:
    run = run_with_change()
    run.changes["same-content"] = IndexChange()  # another version, the same keys
    decodes = count_decodes(monkeypatch)
    today = dataclasses.replace(image("sha256:a"), index_version="new")
    unreadable = dataclasses.replace(image("sha256:b"), index_version="same-content",
                                     match_keys=b"not zlib")
    never_signed = dataclasses.replace(image("sha256:c"), index_version="new", match_keys=b"")
    assert [run.unaffected(each, "etag") for each in (today, unreadable, never_signed)] == [
        True, True, False]
    # Against the index that changed a key, the unreadable column is decoded and refused.
    unreadable = dataclasses.replace(unreadable, index_version="old")
    assert (run.unaffected(unreadable, "etag"), decodes, run.decoded) == (
        False, [b"not zlib"], {})


def test_a_row_another_matcher_assessed_is_re_matched_in_full_whatever_the_index_did(
        monkeypatch: Any) -> None:
    # A release that changes how versions compare or which lookups a package makes changes
    # findings while no advisory changes: its keys and signatures are not trusted.
    run = run_with_change()
    decodes = count_decodes(monkeypatch)
    unchanged_index = dataclasses.replace(image("sha256:a"), index_version="new")
    older = dataclasses.replace(unchanged_index, matcher_version="0123456789abcdef")
    never = dataclasses.replace(unchanged_index, matcher_version="")
    assert [run.unaffected(each, "etag") for each in (unchanged_index, older, never)] == [
        True, False, False]
    assert [run.row_keys(each) is None for each in (unchanged_index, older, never)] == [
        False, True, True]
    assert (still_signed(run, dataclasses.replace(image("sha256:b"), matcher_version="")),
            len(decodes)) == ({}, 1)
    assert (run.matcher_version, run.row_update(older, "etag", "scan").changes[
        "matcher_version"]) == (matcher_version(), matcher_version())
