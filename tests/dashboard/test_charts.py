"""The trend chart: an SVG line per severity and the same numbers as a table."""

from __future__ import annotations

import re

from scanning.dashboard.charts import trend_chart
from scanning.service.summary import TrendPoint

POINTS = (TrendPoint(day="2026-12-01", active=(4, 2, 0, 0, 0, 0)),
          TrendPoint(day="2026-12-02", active=(2, 2, 1, 0, 0, 0)))


def test_each_severity_is_a_line_scaled_to_the_highest_count() -> None:
    lines = dict(re.findall(r'data-severity="(\w+)"><polyline points="([^"]+)"',
                            trend_chart(POINTS)))
    assert (lines["critical"], lines["high"], lines["medium"]) == (
        "48.0,12.0 708.0,112.0", "48.0,112.0 708.0,112.0", "48.0,212.0 708.0,162.0")


def test_the_chart_names_its_data_and_carries_it_as_a_table() -> None:
    chart = trend_chart(POINTS)
    title = re.search(r'<title id="trend-title">([^<]+)</title>', chart)
    rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td>\d+</td>)+)</tr>", chart)
    assert (title.group(1) if title else None, rows) == (
        "Active findings per day from 2026-12-01 to 2026-12-02; latest: critical 2, high 2, "
        "medium 1, low 0, negligible 0, unknown 0",
        [("2026-12-02", "<td>2</td><td>2</td><td>1</td><td>0</td><td>0</td><td>0</td>"),
         ("2026-12-01", "<td>4</td><td>2</td><td>0</td><td>0</td><td>0</td><td>0</td>")])


def test_no_day_yet_says_so() -> None:
    assert trend_chart(()) == "<p>No day summarised yet.</p>"
