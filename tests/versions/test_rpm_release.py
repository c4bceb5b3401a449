"""rpm compares the release only when both versions have one (lib/rpmver.c ``rpmverCmp``).

The reference tables (``rpm_evr.tsv``) have no row mixing a release with none; these cases
are written here from that rule.
"""

from __future__ import annotations

from scanning.versions import VersionScheme, compare, sort_key


def test_a_bound_without_release_equals_every_release_of_that_version() -> None:
    assert [compare(VersionScheme.RPM, a, b) for a, b in (
        ("1.2", "1.2-3.cm2"), ("1.2-3.cm2", "1.2"), ("0:1.2", "1.2-1"),
    )] == [0, 0, 0]


def test_releases_compare_when_both_have_one() -> None:
    assert [compare(VersionScheme.RPM, a, b) for a, b in (
        ("1.2-3.cm2", "1.2-10.cm2"), ("1.2-10.cm2", "1.2-3.cm2"), ("1:1.0-1", "1.2-1"),
    )] == [-1, 1, 1]


def test_sort_key_orders_like_compare() -> None:
    versions = ["1.2-10.cm2", "1:0.1-1", "1.2-3.cm2", "1.1-99"]
    assert sorted(versions, key=lambda v: sort_key(VersionScheme.RPM, v)) == [
        "1.1-99", "1.2-3.cm2", "1.2-10.cm2", "1:0.1-1"
    ]
