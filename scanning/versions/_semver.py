"""Semantic Versioning 2.0.0 (https://semver.org, section 11) and Go module versions.

The sort key is ``(major, minor, patch, pre)`` where ``pre`` is ``(1,)`` for a release and
``(0, id, ...)`` for a pre-release whose identifiers are ``(0, number)`` or ``(1, text)``:
numeric identifiers sort numerically and before alphanumeric ones, a longer identifier list
sorts after its prefix, and any pre-release sorts before the release. Build metadata is
ignored for precedence.

``semver_key`` is deliberately tolerant, because the ecosystems that use SemVer ordering
(npm, crates.io, NuGet, Hex, Pub, SwiftURL) and OSV ``SEMVER`` ranges see versions such as
``v1.2.3``, ``=1.2.3`` (node-semver loose mode), ``1.2`` or ``1.2.3.4`` (NuGet): a leading
``v``/``=`` and whitespace are dropped, missing minor/patch count as 0, and a fourth numeric
component (NuGet's revision) is kept and compared. Pre-release labels written without a
hyphen (``1.2.3beta``, node-semver loose) are accepted.

``go_canonical``/``go_compare`` follow golang.org/x/mod/semver exactly: a ``v`` prefix is
required, ``vMAJOR`` and ``vMAJOR.MINOR`` are shorthands only without pre-release or build,
no leading zeros, and an invalid version compares equal to other invalid ones and below every
valid one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError

PreKey = tuple[int | tuple[int, int] | tuple[int, str], ...]
SemverKey = tuple[int, int, int, int, PreKey]

_RELEASE: PreKey = (1,)

_SEMVER = re.compile(
    r"""^\s*[v=\s]*
    (?P<major>0|[1-9][0-9]*|[0-9]+)
    (?:\.(?P<minor>[0-9]+))?
    (?:\.(?P<patch>[0-9]+))?
    (?:\.(?P<revision>[0-9]+))?
    (?:-?(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    (?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    \s*$""",
    re.VERBOSE,
)


def _pre_key(pre: str | None) -> PreKey:
    if pre is None:
        return _RELEASE
    parts: list[tuple[int, int] | tuple[int, str]] = []
    for ident in pre.split("."):
        if ident.isdigit() and ident.isascii():
            parts.append((0, int(ident)))
        else:
            parts.append((1, ident))
    return (0, *parts)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def semver_key(version: str) -> SemverKey:
    """Sort key of a SemVer 2.0 version (tolerant parse, see module docstring)."""
    match = _SEMVER.match(version)
    if match is None:
        raise VersionError(f"not a semantic version: {version!r}")
    return (
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        int(match["revision"] or 0),
        _pre_key(match["pre"]),
    )


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def nuget_key(version: str) -> SemverKey:
    """Sort key of a NuGet version (NuGet.Versioning ``VersionComparer.Default``): up to four
    numeric parts, missing ones 0 (``1.0`` = ``1.0.0.0``), leading zeros ignored, release labels
    compared like SemVer 2.0 but case-insensitively, build metadata ignored."""
    return semver_key(version.lower())


def semver_is_prerelease(version: str) -> bool:
    return semver_key(version)[4] != _RELEASE


# golang.org/x/mod/semver grammar
_GO_NUM = r"(?:0|[1-9][0-9]*)"
_GO_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_GO = re.compile(
    rf"^v(?P<major>{_GO_NUM})(?:\.(?P<minor>{_GO_NUM})(?:\.(?P<patch>{_GO_NUM})"
    rf"(?:-(?P<pre>{_GO_IDENT}(?:\.{_GO_IDENT})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?$"
)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _go_parse(version: str) -> tuple[str, SemverKey] | None:
    match = _GO.match(version)
    if match is None:
        return None
    major, minor, patch = match["major"], match["minor"] or "0", match["patch"] or "0"
    pre = match["pre"]
    canonical = f"v{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    return canonical, (int(major), int(minor), int(patch), 0, _pre_key(pre))


def go_canonical(version: str) -> str:
    """golang.org/x/mod/semver.Canonical: '' for an invalid version."""
    parsed = _go_parse(version)
    return parsed[0] if parsed else ""


def go_compare(a: str, b: str) -> int:
    """golang.org/x/mod/semver.Compare, including its treatment of invalid versions."""
    pa, pb = _go_parse(a), _go_parse(b)
    if pa is None or pb is None:
        return (pa is not None) - (pb is not None)
    ka, kb = pa[1], pb[1]
    return (ka > kb) - (ka < kb)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def go_key(version: str) -> SemverKey:
    """Sort key of a Go module version, with or without the ``v`` (OSV writes none)."""
    text = version if version.startswith("v") else "v" + version
    parsed = _go_parse(text)
    if parsed is None:
        raise VersionError(f"not a Go module version: {version!r}")
    return parsed[1]
