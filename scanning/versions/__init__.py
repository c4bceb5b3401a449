"""Version ordering for every package ecosystem acr-scan matches advisories for.

The matcher calls three things:

* ``scheme_for_ecosystem(ecosystem)`` maps an OSV ecosystem string (``Debian:12``,
  ``Alpine:v3.20``, ``Red Hat:rhel_aus:8.4::appstream``, ``PyPI``, ``npm`` ...) to a
  ``VersionScheme``;
* ``compare(scheme, a, b)`` returns -1, 0 or 1;
* ``sort_key(scheme, version)`` returns a value whose ``<``/``==`` is the scheme's order, for
  sorting and for comparing one installed version against many bounds.

Every parse is cached (``functools.lru_cache``), so matching an image compares small tuples
(or a cached ``packaging`` Version) and never re-parses a version string. dpkg, rpm, apk,
SemVer, NuGet, Go, Maven and RubyGems orderings are hand-written (short, exact, fast); PEP 440 uses
``packaging`` and Composer univers. Why not univers everywhere: see
``tests/versions/test_univers_gaps.py`` for every case where univers 32.0.1 is wrong or
refuses a valid version, and ``bench/bench_versions.py`` for the speed difference.

An unparsable version raises ``VersionError`` (a ``ScanError``, not retryable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from scanning.versions._apk import apk_compare_tokens, apk_key
from scanning.versions._base import VersionError
from scanning.versions._dpkg import dpkg_key
from scanning.versions._maven import maven_compare_items, maven_parse
from scanning.versions._misc import composer_key, generic_key, pep440_key
from scanning.versions._rpm import rpm_compare_keys, rpm_key
from scanning.versions._rubygems import gem_compare_segments, gem_segments
from scanning.versions._semver import go_key, nuget_key, semver_key

__all__ = [
    "VersionError",
    "VersionScheme",
    "compare",
    "scheme_for_ecosystem",
    "sort_key",
]


class VersionScheme(StrEnum):
    DPKG = "dpkg"
    APK = "apk"
    RPM = "rpm"
    PEP440 = "pep440"
    SEMVER = "semver"
    MAVEN = "maven"
    NUGET = "nuget"
    GO = "go"
    RUBYGEMS = "rubygems"
    COMPOSER = "composer"
    GENERIC = "generic"


# OSV ecosystem names (https://ossf.github.io/osv-schema/#defined-ecosystems) before the
# first ":" (release, CPE or repository suffix), lower-cased.
_ECOSYSTEM_SCHEMES: dict[str, VersionScheme] = {
    "debian": VersionScheme.DPKG,
    "ubuntu": VersionScheme.DPKG,
    "alpine": VersionScheme.APK,
    "wolfi": VersionScheme.APK,
    "chainguard": VersionScheme.APK,
    "alpaquita": VersionScheme.APK,
    "bellsoft hardened containers": VersionScheme.APK,
    "minimos": VersionScheme.APK,
    "red hat": VersionScheme.RPM,
    "almalinux": VersionScheme.RPM,
    "rocky linux": VersionScheme.RPM,
    "suse": VersionScheme.RPM,
    "opensuse": VersionScheme.RPM,
    "mariner": VersionScheme.RPM,
    "azure linux": VersionScheme.RPM,
    "photon os": VersionScheme.RPM,
    "openeuler": VersionScheme.RPM,
    "mageia": VersionScheme.RPM,
    "oracle linux": VersionScheme.RPM,
    "amazon linux": VersionScheme.RPM,
    "centos": VersionScheme.RPM,
    "fedora": VersionScheme.RPM,
    "pypi": VersionScheme.PEP440,
    "npm": VersionScheme.SEMVER,
    "crates.io": VersionScheme.SEMVER,
    "nuget": VersionScheme.NUGET,
    "hex": VersionScheme.SEMVER,
    "pub": VersionScheme.SEMVER,
    "swifturl": VersionScheme.SEMVER,
    "go": VersionScheme.GO,
    "maven": VersionScheme.MAVEN,
    "rubygems": VersionScheme.RUBYGEMS,
    "packagist": VersionScheme.COMPOSER,
}


@functools.cache
def scheme_for_ecosystem(ecosystem: str) -> VersionScheme:
    """Version scheme of an OSV ecosystem string; GENERIC for ecosystems we do not know."""
    name = ecosystem.split(":", 1)[0].strip().lower()
    return _ECOSYSTEM_SCHEMES.get(name, VersionScheme.GENERIC)


class _CmpKey:
    """Sort key for orderings that are a comparison function rather than a tuple order."""

    __slots__ = ("cmp", "value")

    def __init__(self, value: Any, cmp: Callable[[Any, Any], int]) -> None:
        self.value = value
        self.cmp = cmp

    def __lt__(self, other: _CmpKey) -> bool:
        return self.cmp(self.value, other.value) < 0

    def __gt__(self, other: _CmpKey) -> bool:
        return self.cmp(self.value, other.value) > 0

    def __le__(self, other: _CmpKey) -> bool:
        return self.cmp(self.value, other.value) <= 0

    def __ge__(self, other: _CmpKey) -> bool:
        return self.cmp(self.value, other.value) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CmpKey) and self.cmp(self.value, other.value) == 0

    def __hash__(self) -> int:
        # equal keys can have different parses (Maven "1.0" == "1"): not hashable by value
        raise TypeError("version sort keys are not hashable")

    def __repr__(self) -> str:
        return f"_CmpKey({self.value!r})"


def _apk_cmp_key(version: str) -> _CmpKey:
    return _CmpKey(apk_key(version), apk_compare_tokens)


def _rpm_cmp_key(version: str) -> _CmpKey:
    return _CmpKey(rpm_key(version), rpm_compare_keys)


def _maven_cmp_key(version: str) -> _CmpKey:
    if not version:
        raise VersionError("empty Maven version")
    return _CmpKey(maven_parse(version), maven_compare_items)


def _gem_cmp_key(version: str) -> _CmpKey:
    return _CmpKey(gem_segments(version), gem_compare_segments)


_KEYS: dict[VersionScheme, Callable[[str], Any]] = {
    VersionScheme.DPKG: dpkg_key,
    VersionScheme.RPM: _rpm_cmp_key,
    VersionScheme.APK: _apk_cmp_key,
    VersionScheme.PEP440: pep440_key,
    VersionScheme.SEMVER: semver_key,
    VersionScheme.NUGET: nuget_key,
    VersionScheme.GO: go_key,
    VersionScheme.MAVEN: _maven_cmp_key,
    VersionScheme.RUBYGEMS: _gem_cmp_key,
    VersionScheme.COMPOSER: composer_key,
    VersionScheme.GENERIC: generic_key,
}

# Schemes whose comparison is a function over cached parses: compare() calls it directly
# instead of building two key wrappers.
_DIRECT: dict[VersionScheme, tuple[Callable[[str], Any], Callable[[Any, Any], int]]] = {
    VersionScheme.APK: (apk_key, apk_compare_tokens),
    VersionScheme.RPM: (rpm_key, rpm_compare_keys),
    VersionScheme.MAVEN: (maven_parse, maven_compare_items),
    VersionScheme.RUBYGEMS: (gem_segments, gem_compare_segments),
}


def sort_key(scheme: VersionScheme, version: str) -> Any:
    """A value ordered like ``version`` under ``scheme``; raises VersionError if unparsable."""
    if not isinstance(version, str):
        raise VersionError(f"version must be a string, not {type(version).__name__}")
    return _KEYS[scheme](version)


def compare(scheme: VersionScheme, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with or after ``b`` under ``scheme``."""
    direct = _DIRECT.get(scheme)
    if direct is not None:
        parse, cmp = direct
        if not a or not b:
            raise VersionError(f"empty {scheme} version")
        return cmp(parse(a), parse(b))
    key = _KEYS[scheme]
    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)
