"""RPM version ordering: ``rpmvercmp`` (rpm lib/rpmvercmp.c) and epoch:version-release.

rpmvercmp splits a string into alphanumeric segments (every other ASCII character is a
separator, as is any non-ASCII byte), compares digit segments numerically and letter segments
with strcmp, puts a digit segment above a letter segment, and treats two special separators:
``~`` sorts before anything, even the end of the string, and ``^`` sorts after the end of the
string but before any further segment. When one string runs out, the one with segments left
is newer.

Each string becomes a tuple of tagged elements whose tuple order is exactly that order:
``~`` (0,) < end (1,) < ``^`` (2,) < letters (3, str) < digits (4, int).

``[epoch:]version[-release]`` compares as rpm's ``rpmverCmp`` (lib/rpmver.c): epoch (0 when
absent), then version, then the release only when both sides have one, so an advisory bound
``1.2`` (no release) equals every installed ``1.2-<release>``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError

_TOKEN = re.compile(r"~|\^|[0-9]+|[A-Za-z]+")
_TILDE = (0,)
_END = (1,)
_CARET = (2,)

Element = tuple[int] | tuple[int, str] | tuple[int, int]
RpmKey = tuple[int, tuple[Element, ...], tuple[Element, ...]]


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def rpmvercmp_key(text: str) -> tuple[Element, ...]:
    """Sort key of one version or release string under rpmvercmp."""
    out: list[Element] = []
    for token in _TOKEN.findall(text):
        if token == "~":
            out.append(_TILDE)
        elif token == "^":
            out.append(_CARET)
        elif token[0].isdigit():
            out.append((4, int(token)))
        else:
            out.append((3, token))
    out.append(_END)
    return tuple(out)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp(a, b): -1, 0 or 1."""
    ka, kb = rpmvercmp_key(a), rpmvercmp_key(b)
    return (ka > kb) - (ka < kb)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def rpm_key(version: str) -> RpmKey:
    """Sort key of ``[epoch:]version[-release]``; a missing epoch is 0, a missing release ''."""
    text = version.strip()
    if not text:
        raise VersionError(f"empty RPM version {version!r}")
    epoch = 0
    colon = text.find(":")
    if colon != -1:
        epoch_text = text[:colon]
        if epoch_text:
            if not epoch_text.isascii() or not epoch_text.isdigit():
                raise VersionError(f"RPM epoch is not a number: {version!r}")
            epoch = int(epoch_text)
        text = text[colon + 1 :]
    ver, hyphen, release = text.rpartition("-")
    if not hyphen:
        ver, release = text, ""
    if not ver:
        raise VersionError(f"RPM version has an empty version part: {version!r}")
    return (epoch, rpmvercmp_key(ver), rpmvercmp_key(release))


_NO_RELEASE = rpmvercmp_key("")


def rpm_compare_keys(a: RpmKey, b: RpmKey) -> int:
    """Order of two ``rpm_key`` results: -1, 0 or 1 (the release only when both have one)."""
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    if a[1] != b[1]:
        return -1 if a[1] < b[1] else 1
    if a[2] == _NO_RELEASE or b[2] == _NO_RELEASE:
        return 0
    return (a[2] > b[2]) - (a[2] < b[2])
