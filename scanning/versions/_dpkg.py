"""Debian package version ordering, as dpkg's ``verrevcmp`` defines it.

Format: ``[epoch:]upstream_version[-debian_revision]`` (deb-version(7), Debian Policy 5.6.12).
Each part is compared as alternating runs of non-digits and digits: non-digit runs character
by character where ``~`` sorts before everything (even the end of the run), then the end of
the run, then letters, then every other character; digit runs numerically.

Instead of comparing two strings character by character on every call, each version is turned
once into a flat tuple of ints whose plain tuple order is dpkg's order, so a comparison is one
C-level tuple comparison:

* a non-digit character becomes its weight (``~`` = -2, letters = 2*byte,
  others = 2*(byte+256)) and every non-digit run ends with a terminator 0, so a shorter run
  meets the terminator exactly where dpkg meets "end of run" (weight 0);
* a digit run becomes its integer value;
* the whole part ends with a sentinel -1 standing for "the string has ended": it is above
  ``~`` (-2) and below the terminator 0 and every other weight, which is where dpkg places
  the end of the string against what the other string still has. Every key starts with a
  (possibly empty) non-digit run and a number, the empty string being ``0, 0``; only the
  first run can be empty, so the sentinel only ever meets a character weight.
"""

from __future__ import annotations

from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError

_TILDE = -2
_END = -1


def _weight(byte: int) -> int:
    if byte == 0x7E:  # "~"
        return _TILDE
    if 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A:
        return 2 * byte
    return 2 * (byte + 256)


_WEIGHTS = tuple(_weight(b) for b in range(256))
_DIGITS = frozenset(range(0x30, 0x3A))


def _part_key(text: str) -> tuple[int, ...]:
    data = text.encode("utf-8", "surrogateescape")
    out: list[int] = []
    i = 0
    n = len(data)
    while i < n:
        while i < n and data[i] not in _DIGITS:
            out.append(_WEIGHTS[data[i]])
            i += 1
        out.append(0)
        start = i
        while i < n and data[i] in _DIGITS:
            i += 1
        out.append(int(data[start:i]) if i > start else 0)
    if not out:
        # an empty part is an empty non-digit run followed by the number 0, like "0"
        # (dpkg: "1.0-0" == "1.0", and "1.0-0~" < "1.0")
        out = [0, 0]
    out.append(_END)
    return tuple(out)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def dpkg_key(version: str) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """Sort key of a Debian version; raises VersionError where dpkg refuses the string."""
    text = version.strip()
    if not text:
        raise VersionError(f"empty Debian version {version!r}")
    if any(c.isspace() for c in text):
        raise VersionError(f"Debian version contains whitespace: {version!r}")
    epoch = 0
    colon = text.find(":")
    if colon != -1:
        epoch_text = text[:colon]
        if not epoch_text.isascii() or not epoch_text.isdigit():
            raise VersionError(f"Debian version epoch is not a number: {version!r}")
        epoch = int(epoch_text)
        text = text[colon + 1 :]
        if not text:
            raise VersionError(f"Debian version has nothing after the epoch: {version!r}")
    upstream, hyphen, revision = text.rpartition("-")
    if not hyphen:
        upstream, revision = text, ""
    elif not revision:
        raise VersionError(f"Debian version has an empty revision: {version!r}")
    if not upstream:
        raise VersionError(f"Debian version has an empty upstream part: {version!r}")
    return (epoch, _part_key(upstream), _part_key(revision))
