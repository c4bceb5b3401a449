"""Public API of scanning.versions: ecosystem mapping, errors, and univers' known gaps."""

from __future__ import annotations

import pytest

from scanning.errors import ScanError
from scanning.versions import VersionError, VersionScheme, compare, scheme_for_ecosystem, sort_key
from tests.versions.conftest import table_rows


@pytest.mark.parametrize(
    ("ecosystem", "scheme"),
    [
        ("Debian:12", VersionScheme.DPKG),
        ("Ubuntu:22.04:LTS", VersionScheme.DPKG),
        ("Ubuntu:Pro:18.04:LTS", VersionScheme.DPKG),
        ("Alpine:v3.20", VersionScheme.APK),
        ("Wolfi", VersionScheme.APK),
        ("Chainguard", VersionScheme.APK),
        ("Red Hat", VersionScheme.RPM),
        ("Red Hat:rhel_aus:8.4::appstream", VersionScheme.RPM),
        ("AlmaLinux:9", VersionScheme.RPM),
        ("Rocky Linux:9", VersionScheme.RPM),
        ("SUSE:Linux Enterprise Server 15 SP5", VersionScheme.RPM),
        ("openSUSE:Tumbleweed", VersionScheme.RPM),
        ("Mariner", VersionScheme.RPM),
        ("Azure Linux", VersionScheme.RPM),
        ("PyPI", VersionScheme.PEP440),
        ("npm", VersionScheme.SEMVER),
        ("crates.io", VersionScheme.SEMVER),
        ("NuGet", VersionScheme.NUGET),
        ("Hex", VersionScheme.SEMVER),
        ("Pub", VersionScheme.SEMVER),
        ("Go", VersionScheme.GO),
        ("Maven", VersionScheme.MAVEN),
        ("Maven:https://maven.google.com", VersionScheme.MAVEN),
        ("RubyGems", VersionScheme.RUBYGEMS),
        ("Packagist", VersionScheme.COMPOSER),
        ("Hackage", VersionScheme.GENERIC),
    ],
)
def test_scheme_for_ecosystem(ecosystem: str, scheme: VersionScheme) -> None:
    assert scheme_for_ecosystem(ecosystem) is scheme


def test_version_error_is_a_permanent_scan_error() -> None:
    assert issubclass(VersionError, ScanError)
    assert VersionError("x").retryable is False


@pytest.mark.parametrize(
    ("scheme", "version"),
    [
        (VersionScheme.DPKG, ""),
        (VersionScheme.DPKG, "a:1.0"),
        (VersionScheme.DPKG, "1.0-"),
        (VersionScheme.RPM, ""),
        (VersionScheme.APK, ""),
        (VersionScheme.SEMVER, "1.2..4"),
        (VersionScheme.GO, "1.2-pre"),
        (VersionScheme.RUBYGEMS, "1.2..4"),
        (VersionScheme.MAVEN, ""),
        (VersionScheme.GENERIC, "..."),
    ],
)
def test_unparsable_version_raises_version_error(scheme: VersionScheme, version: str) -> None:
    with pytest.raises(VersionError):
        compare(scheme, version, "1.0")


def test_pep440_invalid_versions_raise_version_error() -> None:
    accepted = []
    for (version,) in table_rows("pep440_invalid.txt"):
        try:
            sort_key(VersionScheme.PEP440, version)
            accepted.append(version)
        except VersionError:
            pass
    assert accepted == []


def test_pep440_legacy_versions_are_refused_like_modern_packaging() -> None:
    # packaging >= 22 (what pip uses) has no LegacyVersion; neither do we.
    refused = 0
    for a, _op, b in table_rows("pep440_legacy.tsv"):
        with pytest.raises(VersionError):
            compare(VersionScheme.PEP440, a, b)
        refused += 1
    assert refused > 0


# Cases univers 32.0.1 gets wrong or refuses (tests/versions/test_tables.py checks the whole
# tables; these rows are why the comparators are hand-written).
@pytest.mark.parametrize(
    ("scheme", "a", "b", "expected"),
    [
        # univers DebianVersion refuses colons in the upstream version (allowed with an epoch)
        (VersionScheme.DPKG, "1:2:123", "1:12:3", -1),
        # univers AlpineLinuxVersion refuses apk versions apk itself orders
        (VersionScheme.APK, "23_foo", "4_beta", 1),
        (VersionScheme.APK, "1.06-r6", "006", -1),
        # univers MavenVersion: "release" is a release alias in Maven 3.9
        (VersionScheme.MAVEN, "1release", "1", 0),
        (VersionScheme.MAVEN, "4.1.0", "4.1.0.RELEASE", 0),
        (VersionScheme.MAVEN, "1-0.alpha", "1", -1),
        (VersionScheme.MAVEN, "v0.0.5", "0.0.1.beta6", -1),
    ],
)
def test_cases_univers_gets_wrong(scheme: VersionScheme, a: str, b: str, expected: int) -> None:
    assert compare(scheme, a, b) == expected


def test_sort_key_orders_like_compare() -> None:
    versions = ["1.0-1", "1.0~rc1-1", "1:0.1-1", "1.0-1+deb12u1", "0.9"]
    ordered = sorted(versions, key=lambda v: sort_key(VersionScheme.DPKG, v))
    assert ordered == ["0.9", "1.0~rc1-1", "1.0-1", "1.0-1+deb12u1", "1:0.1-1"]
