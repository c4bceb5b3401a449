"""OSV range evaluation (https://ossf.github.io/osv-schema/#evaluation) edge cases."""

from __future__ import annotations

import json
import pickle
import time
from typing import Any

import pytest

from scanning.versions import VersionError
from scanning.versions.osv_ranges import (
    AffectedResult,
    CompiledAffected,
    compile_affected,
    evaluate,
    is_affected,
)


def _entry(
    ecosystem: str, *ranges: tuple[str, list[dict[str, str]]], versions: list[str] | None = None
) -> dict[str, Any]:
    return {
        "package": {"ecosystem": ecosystem, "name": "pkg"},
        "ranges": [{"type": kind, "events": events} for kind, events in ranges],
        "versions": versions or [],
    }


FIXED_123 = _entry("npm", ("SEMVER", [{"introduced": "0"}, {"fixed": "1.2.3"}]))


def test_introduced_zero_affects_everything_below_fixed() -> None:
    assert is_affected(FIXED_123, "0.0.1") == AffectedResult(
        affected=True, reason="introduced 0, fixed 1.2.3", fixed_versions=("1.2.3",)
    )


def test_fixed_version_itself_is_not_affected() -> None:
    assert is_affected(FIXED_123, "1.2.3") == AffectedResult(affected=False)


def test_pre_release_of_fixed_version_is_affected() -> None:
    assert is_affected(FIXED_123, "1.2.3-rc.1").affected is True


def test_unsorted_events_are_sorted_before_evaluation() -> None:
    entry = _entry(
        "PyPI",
        (
            "ECOSYSTEM",
            [{"fixed": "2.5"}, {"introduced": "2.0"}, {"fixed": "1.5"}, {"introduced": "1.0"}],
        ),
    )
    results = {
        v: is_affected(entry, v).affected
        for v in ("0.9", "1.0", "1.4", "1.5", "1.9", "2.0", "2.4", "2.5")
    }
    assert results == {
        "0.9": False,
        "1.0": True,
        "1.4": True,
        "1.5": False,
        "1.9": False,
        "2.0": True,
        "2.4": True,
        "2.5": False,
    }


def test_second_range_introduced_after_first_fixed() -> None:
    entry = _entry(
        "Debian:12",
        ("ECOSYSTEM", [{"introduced": "0"}, {"fixed": "1.0-1"}]),
        ("ECOSYSTEM", [{"introduced": "2.0-1"}, {"fixed": "2.0-3"}]),
    )
    assert [is_affected(entry, v).affected for v in ("0.9-1", "1.5-1", "2.0-2", "2.0-3")] == [
        True,
        False,
        True,
        False,
    ]
    assert is_affected(entry, "2.0-2") == AffectedResult(
        affected=True, reason="introduced 2.0-1, fixed 2.0-3", fixed_versions=("2.0-3",)
    )


def test_last_affected_is_inclusive_and_offers_no_fix() -> None:
    entry = _entry("Maven", ("ECOSYSTEM", [{"introduced": "1.0"}, {"last_affected": "1.4"}]))
    assert is_affected(entry, "1.4") == AffectedResult(
        affected=True, reason="introduced 1.0, last_affected 1.4"
    )
    assert is_affected(entry, "1.4.1").affected is False


def test_limit_bounds_the_range() -> None:
    entry = _entry("npm", ("SEMVER", [{"introduced": "1.0.0"}, {"limit": "1.5.0"}]))
    assert [is_affected(entry, v).affected for v in ("0.9.0", "1.0.0", "1.4.9", "1.5.0")] == [
        False,
        True,
        True,
        False,
    ]


def test_limit_star_means_infinity() -> None:
    entry = _entry("npm", ("SEMVER", [{"introduced": "1.0.0"}, {"limit": "*"}]))
    assert is_affected(entry, "99.0.0").affected is True


def test_versions_list_only() -> None:
    entry = _entry("PyPI", versions=["1.0", "1.1"])
    assert is_affected(entry, "1.1") == AffectedResult(affected=True, reason="listed in versions")
    assert is_affected(entry, "1.2").affected is False


def test_version_listed_but_outside_ranges_is_affected() -> None:
    entry = _entry("PyPI", ("ECOSYSTEM", [{"introduced": "2.0"}]), versions=["1.0"])
    assert is_affected(entry, "1.0").affected is True


def test_semver_range_ignores_ecosystem_and_leading_v() -> None:
    entry = _entry("Go", ("SEMVER", [{"introduced": "0"}, {"fixed": "v1.2.3"}]))
    assert is_affected(entry, "v1.2.2").affected is True


def test_git_ranges_are_ignored() -> None:
    entry = _entry("GIT", ("GIT", [{"introduced": "0"}, {"fixed": "abc123"}]))
    assert compile_affected(entry).ranges == ()
    assert is_affected(entry, "1.0").affected is False


def test_smallest_fixed_above_installed_is_offered() -> None:
    entry = _entry(
        "npm",
        (
            "SEMVER",
            [
                {"introduced": "0"},
                {"fixed": "1.0.5"},
                {"introduced": "1.1.0"},
                {"fixed": "1.1.9"},
                {"introduced": "2.0.0"},
                {"fixed": "2.0.1"},
            ],
        ),
    )
    assert is_affected(entry, "1.1.3").fixed_versions == ("1.1.9",)


def test_invalid_event_version_skips_only_that_range() -> None:
    entry = _entry(
        "Debian:12",
        ("ECOSYSTEM", [{"introduced": "0"}, {"fixed": "not a version"}]),
        ("ECOSYSTEM", [{"introduced": "0"}, {"fixed": "1.0-1"}]),
    )
    compiled = compile_affected(entry)
    assert len(compiled.ranges) == 1
    assert compiled.skipped_ranges == (
        "range 0: Debian version contains whitespace: 'not a version'",
    )
    assert evaluate(compiled, "0.5-1").affected is True


def test_invalid_installed_version_raises_version_error() -> None:
    with pytest.raises(VersionError):
        is_affected(FIXED_123, "not-a-version")


def test_compiled_entry_round_trips_through_json_and_pickle() -> None:
    compiled = compile_affected(
        _entry(
            "Alpine:v3.20",
            ("ECOSYSTEM", [{"fixed": "1.2-r1"}, {"introduced": "0"}]),
            versions=["1.0-r0"],
        )
    )
    assert CompiledAffected.from_json(json.loads(json.dumps(compiled.to_json()))) == compiled
    assert pickle.loads(pickle.dumps(compiled)) == compiled
    assert compiled.ranges[0].events == (("introduced", "0"), ("fixed", "1.2-r1"))


def test_matching_1000_packages_takes_under_50_ms() -> None:
    compiled = [
        compile_affected(
            _entry(
                "Debian:12", ("ECOSYSTEM", [{"introduced": "0"}, {"fixed": f"{i}.2.{j}-1+deb12u1"}])
            )
        )
        for i in range(200)
        for j in range(5)
    ]
    installed = [f"{i}.2.{j % 7}-1" for i in range(200) for j in range(5)]
    for entry, version in zip(compiled, installed, strict=True):
        evaluate(entry, version)  # warm the parse caches as a long-lived worker would
    start = time.perf_counter()
    for entry, version in zip(compiled, installed, strict=True):
        evaluate(entry, version)
    assert time.perf_counter() - start < 0.05
