"""Charts drawn as inline SVG by the server: no script, no library, readable without colour
(each line has its own dash pattern and a legend) and without the picture (a data table)."""

from __future__ import annotations

from collections.abc import Sequence

from scanning.dashboard.html import e, table
from scanning.service.summary import SEVERITIES, TrendPoint

WIDTH, HEIGHT = 720, 240
MAX_DOTS = 31  # a dot per day up to a month; beyond, the lines alone stay readable
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
# One colour and dash per severity, critical first; colours keep 4.5:1 on white (WCAG AA).
LINE_STYLES = (("#a40e26", ""), ("#c2410c", "8 4"), ("#7d4e00", "2 3"), ("#0b5cad", "10 3 2 3"),
               ("#57606a", "4 4"), ("#6e2c91", "1 5"))


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if count == 1 else span * index / (count - 1))


def _y(value: int, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def trend_chart(points: Sequence[TrendPoint]) -> str:
    """Active findings per severity per day: an SVG line chart and the same numbers as a
    table (in a disclosure, so a screen reader or a copy-paste gets the data)."""
    if not points:
        return "<p>No day summarised yet.</p>"
    top = max((max(point.active) for point in points), default=0) or 1
    count = len(points)
    grid = "".join(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_y(value, top):.1f}" '
        f'y2="{_y(value, top):.1f}" stroke="#d0d7de"/>'
        f'<text x="{LEFT - 6}" y="{_y(value, top) + 4:.1f}" text-anchor="end">{value}</text>'
        for value in sorted({0, top // 2, top}))
    labels = "".join(
        f'<text x="{_x(index, count):.1f}" y="{HEIGHT - 8}" text-anchor="'
        + ("middle" if count == 1 or 0 < index < count - 1 else "start" if index == 0
           else "end") + f'">{e(points[index].day[5:])}</text>'
        for index in sorted({0, count // 2, count - 1}))
    lines = []
    for position, severity in enumerate(SEVERITIES):
        colour, dash = LINE_STYLES[position]
        coordinates = [(_x(index, count), _y(point.active[position], top))
                       for index, point in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                       for x, y in coordinates) if count <= MAX_DOTS else ""
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        lines.append(f'<g data-severity="{severity.value}"><polyline points="{path}" '
                     f'fill="none" stroke="{colour}" stroke-width="2"{dashing}/>{dots}</g>')
    legend = "".join(
        f'<li><svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" '
        f'y2="5" stroke="{colour}" stroke-width="3"'
        + (f' stroke-dasharray="{dash}"' if dash else "") + f'/></svg> {e(severity.value)}</li>'
        for severity, (colour, dash) in zip(SEVERITIES, LINE_STYLES, strict=True))
    summary = (f"Active findings per day from {points[0].day} to {points[-1].day}; latest: "
               + ", ".join(f"{severity.value} {count}" for severity, count
                           in zip(SEVERITIES, points[-1].active, strict=True)))
    chart = (f'<figure class="chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-labelledby="trend-title" font-size="11" fill="#1b1f24">'
             f'<title id="trend-title">{e(summary)}</title>{grid}{labels}{"".join(lines)}'
             f'</svg><figcaption><ul class="legend">{legend}</ul></figcaption></figure>')
    data = table(("Day", *(severity.value.capitalize() for severity in SEVERITIES)),
                 ([e(point.day), *(str(count) for count in point.active)]
                  for point in reversed(points)), "Active findings per day")
    return chart + f"<details><summary>The numbers, per day</summary>{data}</details>"
