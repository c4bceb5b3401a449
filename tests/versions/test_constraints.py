"""Constraint strings: trivy's library-compare cases and node-semver / packaging tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scanning.versions import VersionError, VersionScheme
from scanning.versions.constraints import (
    is_vulnerable,
    npm_outside,
    npm_satisfies,
    pep440_specifier_contains,
)
from tests.versions.conftest import TESTDATA, report, table_rows

GOLDEN = TESTDATA / "golden" / "trivy" / "library-compare"
SCHEMES = {
    "npm": VersionScheme.SEMVER,
    "pep440": VersionScheme.PEP440,
    "maven": VersionScheme.MAVEN,
    "rubygems": VersionScheme.RUBYGEMS,
}


def _golden_cases() -> list[Any]:
    cases = []
    for name, scheme in SCHEMES.items():
        path = GOLDEN / f"{name}.json"
        if not path.is_file():
            continue
        for tests in json.loads(path.read_text(encoding="utf-8"))["tests"].values():
            for case in tests:
                cases.append(pytest.param(scheme, case, id=f"{name}-{case['name']}"))
    return cases


@pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"shared test data not present: {GOLDEN}")
@pytest.mark.parametrize(("scheme", "case"), _golden_cases())
def test_is_vulnerable_agrees_with_trivy(scheme: VersionScheme, case: dict[str, Any]) -> None:
    args = case["args"]
    advisory = args["advisory"]
    got = is_vulnerable(
        scheme,
        args["currentVersion"],
        vulnerable=advisory.get("VulnerableVersions"),
        patched=advisory.get("PatchedVersions"),
        unaffected=advisory.get("UnaffectedVersions"),
        allow_local_specifier=case.get("allowLocalSpec", False),
    )
    assert got is case["want"]


def _options(text: str) -> dict[str, bool]:
    flags = set(text.split(",")) - {"-"}
    return {"loose": "loose" in flags, "include_prerelease": "includePrerelease" in flags}


def test_npm_satisfies_agrees_with_node_semver() -> None:
    failures: list[str] = []
    total = 0
    for range_text, version, expected, options in table_rows("npm_ranges.tsv"):
        total += 1
        try:
            got: bool | str = npm_satisfies(version, range_text, **_options(options))
        except VersionError as error:
            got = f"VersionError({error})" if expected == "true" else False
        if got != (expected == "true"):
            failures.append(f"{range_text!r} {version!r} {options}: got {got}, want {expected}")
    assert not failures, report(failures, total)


def test_npm_outside_agrees_with_node_semver() -> None:
    failures: list[str] = []
    total = 0
    for func, range_text, version, expected, options in table_rows("npm_outside.tsv"):
        total += 1
        direction = ">" if func == "gtr" else "<"
        try:
            got: bool | str = npm_outside(version, range_text, direction, **_options(options))
        except VersionError as error:
            got = f"VersionError({error})"
        if got != (expected == "true"):
            failures.append(f"{func} {range_text!r} {version!r}: got {got}, want {expected}")
    assert not failures, report(failures, total)


def test_pep440_specifiers_agree_with_packaging() -> None:
    failures = [
        f"{spec!r} {version!r}: want {expected}"
        for spec, version, expected in table_rows("pep440_specifiers.tsv")
        if pep440_specifier_contains(spec, version, prereleases=True) != (expected == "true")
    ]
    assert not failures, "\n".join(failures)


def _flag(text: str) -> bool | None:
    return None if text == "None" else text == "True"


def test_pep440_specifier_prerelease_policy_agrees_with_packaging() -> None:
    failures = [
        f"{spec!r} {version!r} {spec_pre} {contains_pre}: want {expected}"
        for spec, version, spec_pre, contains_pre, expected in table_rows(
            "pep440_specifiers_prerelease.tsv"
        )
        if pep440_specifier_contains(
            spec, version, prereleases=_flag(contains_pre), spec_prereleases=_flag(spec_pre)
        )
        != (expected == "true")
    ]
    assert not failures, "\n".join(failures)
