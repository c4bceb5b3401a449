"""The overview's totals: read from every image row, at most once a minute or a rule change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from scanning.dashboard.pages import TOTALS_MAX_AGE, forget_totals, totals
from scanning.model import AssessmentStatus, FindingCounts, Severity
from scanning.store import ImageRecord

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


class Images:
    """The two things ``totals`` uses of ``store.images``, counting the full reads."""

    def __init__(self, table_name: str) -> None:
        self.table = SimpleNamespace(url="http://account", table_name=table_name)
        self.reads = 0

    def iter_with_etags(self, *_: Any) -> Any:
        self.reads += 1
        yield ImageRecord(registry="r.io", repository="web", digest="sha256:" + "a" * 64,
                          status=AssessmentStatus.UNHEALTHY,
                          counts=FindingCounts(active={Severity.CRITICAL: 2,
                                                       Severity.HIGH: 1})), "etag"


def _store(table_name: str) -> Any:
    return SimpleNamespace(images=Images(table_name))


def test_totals_sum_statuses_severities_and_repositories() -> None:
    summed = totals(_store("sumimages"), NOW)
    assert (summed.statuses, summed.severities[:3], summed.top_repositories) == (
        (("unhealthy", 1),),
        ((Severity.CRITICAL, 2), (Severity.HIGH, 1), (Severity.MEDIUM, 0)),
        (("r.io", "web", 3),))


def test_a_second_view_within_the_max_age_reads_no_row() -> None:
    store = _store("cachedimages")
    totals(store, NOW)
    again = totals(store, NOW + TOTALS_MAX_AGE - timedelta(seconds=1))
    assert (store.images.reads, again.read_at) == (1, NOW)


def test_a_view_after_the_max_age_reads_the_rows_again() -> None:
    store = _store("staleimages")
    totals(store, NOW)
    again = totals(store, NOW + TOTALS_MAX_AGE)
    assert (store.images.reads, again.read_at) == (2, NOW + TOTALS_MAX_AGE)


def test_a_rule_change_makes_the_next_view_read_again() -> None:
    store = _store("forgottenimages")
    totals(store, NOW)
    forget_totals(store)
    totals(store, NOW + timedelta(seconds=1))
    assert store.images.reads == 2


def test_each_store_prefix_has_its_own_totals() -> None:
    first, second = _store("oneimages"), _store("twoimages")
    totals(first, NOW)
    totals(second, NOW)
    assert (first.images.reads, second.images.reads) == (1, 1)
