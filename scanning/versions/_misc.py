"""Orderings without a hand-written comparator: PEP 440, Composer and a generic fallback.

PEP 440 uses ``packaging.version.Version`` (pypa/packaging is the reference implementation
the test vectors come from). Composer wraps univers' ComposerVersion. The generic ordering
splits a string into digit and letter runs, compares digits numerically and letters
lexically, and puts a number above a letter run (the common "1.0 > 1.0rc" intuition);
it is used for ecosystems we have no specific rules for.
"""

from __future__ import annotations

import re
from functools import lru_cache

from packaging.version import InvalidVersion, Version
from univers.versions import ComposerVersion
from univers.versions import InvalidVersion as UniversInvalidVersion

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def pep440_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion as error:
        raise VersionError(f"not a PEP 440 version: {version!r}") from error


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def composer_key(version: str) -> ComposerVersion:
    try:
        return ComposerVersion(version.strip())
    except (UniversInvalidVersion, ValueError, TypeError) as error:
        raise VersionError(f"not a Composer version: {version!r}") from error


_GENERIC_TOKEN = re.compile(r"[0-9]+|[A-Za-z]+")


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def generic_key(version: str) -> tuple[tuple[int, int | str], ...]:
    tokens = _GENERIC_TOKEN.findall(version)
    if not tokens:
        raise VersionError(f"not a version: {version!r}")
    key = [(2, int(t)) if t[0].isdigit() else (1, t.lower()) for t in tokens]
    while key and key[-1] == (2, 0):
        key.pop()
    # end of the version sorts between letters (pre-releases) and numbers
    return (*key, (1, "~"))
