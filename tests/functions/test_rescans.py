"""The rescan orchestration's instance ids: the ones README.md and GET rescans/{id} document."""

from __future__ import annotations

from datetime import UTC, datetime

from scanning.functions.rescans import reassessment_id, weekly_rescan_id


def test_weekly_id_is_the_iso_week_so_a_tick_in_the_same_week_finds_it() -> None:
    # 2026-11-30 is the Monday and 2026-12-06 the Sunday of ISO week 49; 2027-01-01 is in
    # week 53 of 2026.
    assert [weekly_rescan_id("acrscan", datetime(year, month, day, tzinfo=UTC))
            for year, month, day in ((2026, 11, 30), (2026, 12, 6), (2026, 12, 7),
                                     (2027, 1, 1))] == [
        "rescan-acrscan-2026-W49", "rescan-acrscan-2026-W49", "rescan-acrscan-2026-W50",
        "rescan-acrscan-2026-W53"]


def test_reassessment_id_is_the_refresh_minute() -> None:
    assert reassessment_id("acrscan", datetime(2026, 12, 3, 2, 0, 41, tzinfo=UTC)) == (
        "reassess-acrscan-20261203T0200")
