"""RubyGems version ordering (rubygems/version.rb, Gem::Version#<=>).

A version is ``[0-9]+(\\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?``; a ``-`` means
``.pre.`` (so ``1.9.25-x86-mingw32`` is a pre-release of 1.9.25). Segments are runs of
digits (numbers) or letters (strings); trailing zero segments are dropped from the numeric
part and from the string part (``canonical_segments``); when comparing, a missing segment
is 0 and a string segment sorts before a number (``1.0.a < 1.0``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from scanning.versions._base import PARSE_CACHE_SIZE, VersionError

_PATTERN = re.compile(
    r"^\s*([0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?\s*$"
)
_SEGMENT = re.compile(r"[0-9]+|[a-zA-Z]+")

Segment = int | str


def _drop_trailing_zeros(segments: list[Segment]) -> list[Segment]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def gem_segments(version: str) -> tuple[Segment, ...]:
    """Gem::Version#canonical_segments of ``version``."""
    match = _PATTERN.match(version)
    if match is None:
        raise VersionError(f"not a RubyGems version: {version!r}")
    text = (match[1] or "0").replace("-", ".pre.")
    segments: list[Segment] = [int(s) if s[0].isdigit() else s for s in _SEGMENT.findall(text)]
    first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    numeric = _drop_trailing_zeros(segments[:first_string])
    strings = _drop_trailing_zeros(segments[first_string:])
    return tuple(numeric + strings)


def gem_compare_segments(left: tuple[Segment, ...], right: tuple[Segment, ...]) -> int:
    for index in range(max(len(left), len(right))):
        a: Segment = left[index] if index < len(left) else 0
        b: Segment = right[index] if index < len(right) else 0
        if a == b:
            continue
        if isinstance(a, str) and isinstance(b, int):
            return -1
        if isinstance(a, int) and isinstance(b, str):
            return 1
        return -1 if a < b else 1  # type: ignore[operator]
    return 0


def gem_is_prerelease(version: str) -> bool:
    return any(isinstance(s, str) for s in gem_segments(version))


def gem_release_segments(version: str) -> tuple[Segment, ...]:
    """Gem::Version#release: the version without its pre-release part."""
    segments = gem_segments(version)
    first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    return segments[:first_string]
