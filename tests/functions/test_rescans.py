"""The rescan orchestration's instance ids: the ones README.md and GET rescans/{id} document."""

from __future__ import annotations

from datetime import UTC, datetime

from scanning.api import _RESCAN_ID
from scanning.functions.rescans import reassessment_id, weekly_rescan_id


def test_weekly_id_is_the_iso_week_so_a_tick_in_the_same_week_finds_it() -> None:
    # 2026-11-30 is the Monday and 2026-12-06 the Sunday of ISO week 49; 2027-01-01 is in
    # week 53 of 2026.
    assert [weekly_rescan_id("acrscan", datetime(year, month, day, tzinfo=UTC))
            for year, month, day in ((2026, 11, 30), (2026, 12, 6), (2026, 12, 7),
                                     (2027, 1, 1))] == [
        "rescan-acrscan-2026-W49", "rescan-acrscan-2026-W49", "rescan-acrscan-2026-W50",
        "rescan-acrscan-2026-W53"]


def test_reassessment_id_names_the_refresh_minute_and_the_published_index() -> None:
    # Two publishes in one minute are two re-assessments; the same publish is the same one.
    moment = datetime(2026, 12, 3, 2, 0, 41, tzinfo=UTC)
    first = '2026-12-03T01:58:12Z|"0x8DE3F1A2B3C4D50"'
    second = '2026-12-03T01:58:12Z|"0x8DE3F1A2B3C4D51"'
    ids = [reassessment_id("acrscan", moment, version) for version in (first, second, first)]
    assert (ids, [bool(_RESCAN_ID.fullmatch(each)) for each in ids]) == ([
        "reassess-acrscan-20261203T0200-ca1dd2a5", "reassess-acrscan-20261203T0200-c03ef931",
        "reassess-acrscan-20261203T0200-ca1dd2a5"], [True, True, True])
