"""Every row of every ordering table in ../shared/testdata/version-vectors.

Rows are checked inside one test per table (14.5k dpkg rows would be slow as separate
tests); a failure lists every disagreeing row.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scanning.versions import VersionError, VersionScheme, compare
from scanning.versions._apk import apk_compare_tokens, apk_is_valid, apk_tokens
from scanning.versions._rpm import rpmvercmp
from scanning.versions._semver import go_canonical, go_compare
from tests.versions.conftest import SIGN, report, table_rows


def _check_ordering(name: str, cmp: Callable[[str, str], int]) -> None:
    failures: list[str] = []
    total = 0
    for row in table_rows(name):
        a, op, b = row[0], row[1], row[2]
        total += 1
        try:
            got: int | str = cmp(a, b)
        except VersionError as error:
            got = f"VersionError({error})"
        if got != SIGN[op]:
            failures.append(f"{a!r} {op} {b!r}: got {got}")
    assert total > 0
    assert not failures, report(failures, total)


def _scheme(scheme: VersionScheme) -> Callable[[str, str], int]:
    return lambda a, b: compare(scheme, a, b)


@pytest.mark.parametrize(
    ("table", "scheme"),
    [
        ("deb.tsv", VersionScheme.DPKG),
        ("rpm_evr.tsv", VersionScheme.RPM),
        ("pep440.tsv", VersionScheme.PEP440),
        ("npm.tsv", VersionScheme.SEMVER),
        ("npm_loose.tsv", VersionScheme.SEMVER),
        ("maven.tsv", VersionScheme.MAVEN),
        ("apk.tsv", VersionScheme.APK),
        ("nuget.tsv", VersionScheme.NUGET),
    ],
)
def test_compare_agrees_with_reference_table(table: str, scheme: VersionScheme) -> None:
    _check_ordering(table, _scheme(scheme))


def test_rpmvercmp_agrees_with_rpm_table() -> None:
    _check_ordering("rpm.tsv", rpmvercmp)


def test_go_compare_agrees_with_golang_mod_semver() -> None:
    _check_ordering("go_semver.tsv", go_compare)


def test_go_canonical_agrees_with_golang_mod_semver() -> None:
    failures = [
        f"{version!r}: got {go_canonical(version)!r}, want {canonical!r}"
        for version, canonical in (
            (row[0], row[1] if len(row) > 1 else "")
            for row in table_rows("go_semver_canonical.tsv")
        )
        if go_canonical(version) != canonical
    ]
    assert not failures, "\n".join(failures)


def test_apk_validity_agrees_with_apk_tools() -> None:
    failures = [
        f"{version!r}: got {apk_is_valid(version)}, want {valid}"
        for version, valid in ((row[0], row[1] == "true") for row in table_rows("apk_validity.tsv"))
        if apk_is_valid(version) != valid
    ]
    assert not failures, "\n".join(failures)


def test_maven_follows_maven_3_9_where_releases_disagree() -> None:
    failures: list[str] = []
    total = 0
    for a, b, _source, _maven38, maven39, _maven4 in table_rows("maven_version_drift.tsv"):
        total += 1
        got = compare(VersionScheme.MAVEN, a, b)
        if got != SIGN[maven39]:
            failures.append(f"{a!r} vs {b!r}: got {got}, Maven 3.9.16 says {maven39}")
    assert not failures, report(failures, total)


def test_apk_tokens_compare_like_apk_for_invalid_strings() -> None:
    assert apk_compare_tokens(apk_tokens("1.0"), apk_tokens("1.0bc")) == -1
