"""The images table's query over the summary's listing: filters, sort, pages, wrong input."""

from __future__ import annotations

import pytest

from scanning.dashboard.listing import PAGE_SIZE, ImageQuery, Selection, parse_query, select
from scanning.errors import BadRequest
from scanning.model import Severity
from scanning.service.summary import ListedImage, listing_order


def _image(registry: str, repository: str, digest: str, status: str, active: tuple[int, ...],
           fixable: int = 0, fixable_rank: int = -1, pushed: str = "",
           pulled: str = "") -> ListedImage:
    return ListedImage(registry=registry, repository=repository, digest="sha256:" + digest * 64,
                       tags=(), platforms=(), status=status, active=active, fixable=fixable,
                       fixable_rank=fixable_rank, last_pushed=pushed, last_pulled=pulled,
                       assessed_at="")


WEB = _image("a.io", "team/web", "1", "unhealthy", (2, 1, 0, 0, 0, 0), 1,
             Severity.HIGH.rank, "2026-11-02T00:00:00+00:00", "2026-12-01T00:00:00+00:00")
API = _image("a.io", "team/api", "2", "unhealthy", (0, 3, 1, 0, 0, 0), 2,
             Severity.MEDIUM.rank, "2026-11-03T00:00:00+00:00")
BASE = _image("b.io", "base", "3", "healthy", (0, 0, 0, 0, 0, 0),
              pushed="2026-11-01T00:00:00+00:00", pulled="2026-12-02T00:00:00+00:00")
NEW = _image("b.io", "Team/Cli", "4", "", (0, 0, 0, 0, 0, 0))
LISTED = tuple(sorted((WEB, API, BASE, NEW), key=listing_order))


def _repositories(**query: str) -> list[str]:
    return [image.repository for image in select(LISTED, parse_query(query)).images]


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["base", "team/api", "Team/Cli", "team/web"]),
    ({"order": "desc"}, ["team/web", "Team/Cli", "team/api", "base"]),
    ({"sort": "critical", "order": "desc"}, ["team/web", "team/api", "base", "Team/Cli"]),
    ({"sort": "high", "order": "desc"}, ["team/api", "team/web", "base", "Team/Cli"]),
    ({"sort": "status"}, ["Team/Cli", "base", "team/api", "team/web"]),
    ({"sort": "registry", "order": "desc"}, ["base", "Team/Cli", "team/api", "team/web"]),
    ({"sort": "pushed", "order": "desc"}, ["team/api", "team/web", "base", "Team/Cli"]),
    ({"sort": "pulled"}, ["team/api", "Team/Cli", "team/web", "base"]),
])
def test_sort_orders_ties_by_registry_repository_digest(query: dict[str, str],
                                                         expected: list[str]) -> None:
    assert _repositories(**query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ({"registry": "B.IO"}, ["base", "Team/Cli"]),
    ({"repository": "team"}, ["team/api", "Team/Cli", "team/web"]),
    ({"status": "unhealthy"}, ["team/api", "team/web"]),
    ({"severity": "critical"}, ["team/web"]),
    ({"severity": "medium"}, ["team/api", "team/web"]),
    ({"fixable": "1"}, ["team/api", "team/web"]),
    ({"fixable": "1", "severity": "high"}, ["team/web"]),
    ({"fixable": "1", "registry": "b.io"}, []),
])
def test_filters_combine(query: dict[str, str], expected: list[str]) -> None:
    assert _repositories(**query) == expected


def test_pages_hold_fifty_images() -> None:
    many = tuple(_image("a.io", f"app{number:03d}", "5", "healthy", (0,) * 6)
                 for number in range(120))
    third = select(many, parse_query({"page": "3"}))
    assert (third.matched, third.pages, third.first,
            [image.repository for image in third.images]) == (
        120, 3, 101, [f"app{number:03d}" for number in range(100, 120)])


def test_no_match_is_one_empty_page() -> None:
    assert select(LISTED, parse_query({"repository": "nothing"})) == Selection(
        images=(), matched=0, pages=1, first=0)


@pytest.mark.parametrize(("query", "message"), [
    ({"sort": "size"}, "sort must be one of registry, repository, status, critical, high, "
                       "pushed, pulled, assessed, got 'size'"),
    ({"order": "up"}, "order must be asc or desc, got 'up'"),
    ({"page": "0"}, "page must be a whole number from 1, got '0'"),
    ({"page": "two"}, "page must be a whole number from 1, got 'two'"),
    ({"page": "-1"}, "page must be a whole number from 1, got '-1'"),
    ({"fixable": "maybe"}, "fixable must be 1 or left out, got 'maybe'"),
    ({"severity": "huge"}, "parameter 'severity' must be one of unknown, negligible, low, medium, "
                           "high, critical, got 'huge'"),
])
def test_wrong_input_says_what_is_allowed(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_query(query)
    assert str(raised.value) == message


def test_a_page_past_the_last_says_how_many_there_are() -> None:
    with pytest.raises(BadRequest) as raised:
        select(LISTED, parse_query({"page": "2"}))
    assert str(raised.value) == "page 2 is past the last page (1) of these images"


def test_parameters_leave_defaults_out() -> None:
    query = parse_query({"sort": "critical", "order": "desc", "fixable": "on", "page": "2",
                         "severity": "HIGH"})
    assert (query.parameters(), ImageQuery().parameters(page="3"), PAGE_SIZE) == (
        {"severity": "high", "fixable": "1", "sort": "critical", "order": "desc", "page": "2"},
        {"page": "3"}, 50)
