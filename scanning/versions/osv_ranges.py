"""Is a version affected by one OSV ``affected[]`` entry? (OSV schema, "Evaluation").

https://ossf.github.io/osv-schema/#evaluation: a version is affected if it is listed in
``versions`` or lies in any range. For one range, events are sorted by version and walked
in order: ``introduced`` at or below the version makes it affected, ``fixed`` at or below
makes it unaffected, ``last_affected`` strictly below makes it unaffected; a range with
``limit`` events only applies to versions below one of the limits (``*`` = infinity).
``introduced: "0"`` sorts before every version.

* ``SEMVER`` ranges compare with SemVer 2.0 whatever the ecosystem (a leading ``v`` is
  tolerated); ``ECOSYSTEM`` ranges use the ecosystem's ``VersionScheme``.
* ``GIT`` ranges are ignored: they name commits, and an image inventory has versions, not
  commits. osv.dev expands GIT ranges into the ``versions`` list, which we do evaluate.
* Events at the same version are ordered introduced, then last_affected, then fixed, so an
  ``introduced`` and a ``fixed`` at the same version describe an empty interval.
* An event version that does not parse makes that range unusable: it is skipped and
  reported in ``skipped_ranges`` (never silently "not affected" for the whole entry). An
  installed version that does not parse raises ``VersionError``: the caller decides.

``compile_affected`` turns an ``affected`` entry into a ``CompiledAffected`` (plain tuples
and strings, JSON-able via ``to_json``/``from_json``, picklable) with events already sorted,
so the index builder sorts once and matching does no sorting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanning.versions import VersionError, VersionScheme, compare, scheme_for_ecosystem

INTRODUCED = "introduced"
FIXED = "fixed"
LAST_AFFECTED = "last_affected"
LIMIT = "limit"

# order of event kinds at the same version, see the module docstring
_KIND_ORDER = {INTRODUCED: 0, LAST_AFFECTED: 1, FIXED: 2, LIMIT: 3}
_ZERO = "0"
# The reason of a match found in the entry's ``versions`` list rather than in a range.
LISTED_IN_VERSIONS = "listed in versions"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledRange:
    """One ECOSYSTEM or SEMVER range: events sorted by version (limits kept apart)."""

    scheme: VersionScheme
    events: tuple[tuple[str, str], ...]
    limits: tuple[str, ...] = ()
    range_type: str = "ECOSYSTEM"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledAffected:
    """An ``affected[]`` entry ready for matching."""

    ecosystem: str
    scheme: VersionScheme
    ranges: tuple[CompiledRange, ...]
    versions: frozenset[str]
    skipped_ranges: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem,
            "scheme": str(self.scheme),
            "ranges": [
                {
                    "type": r.range_type,
                    "scheme": str(r.scheme),
                    "events": [list(e) for e in r.events],
                    "limits": list(r.limits),
                }
                for r in self.ranges
            ],
            "versions": sorted(self.versions),
            "skipped_ranges": list(self.skipped_ranges),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompiledAffected:
        return cls(
            ecosystem=data["ecosystem"],
            scheme=VersionScheme(data["scheme"]),
            ranges=tuple(
                CompiledRange(
                    scheme=VersionScheme(r["scheme"]),
                    events=tuple((kind, version) for kind, version in r["events"]),
                    limits=tuple(r["limits"]),
                    range_type=r["type"],
                )
                for r in data["ranges"]
            ),
            versions=frozenset(data["versions"]),
            skipped_ranges=tuple(data.get("skipped_ranges", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AffectedResult:
    """Outcome of evaluating one version against one ``affected[]`` entry."""

    affected: bool
    # why: e.g. "introduced 0, fixed 1.2.3", "listed in versions"; "" when not affected
    reason: str = ""
    # fixed versions above the installed one in the matching range, smallest first
    fixed_versions: tuple[str, ...] = ()

    @property
    def fixed_version(self) -> str | None:
        return self.fixed_versions[0] if self.fixed_versions else None


NOT_AFFECTED = AffectedResult(affected=False)


def _event_sort_key(scheme: VersionScheme, kind: str, version: str) -> tuple[int, Any, int]:
    if kind == INTRODUCED and version == _ZERO:
        return (0, 0, _KIND_ORDER[kind])
    return (1, _sort_key(scheme, version), _KIND_ORDER[kind])


def _sort_key(scheme: VersionScheme, version: str) -> Any:
    return _version_cmp_key(scheme)(version)


def _version_cmp_key(scheme: VersionScheme) -> Callable[[str], Any]:
    def cmp(a: str, b: str) -> int:
        return _cmp(scheme, a, b)

    return functools.cmp_to_key(cmp)


def _cmp(scheme: VersionScheme, a: str, b: str) -> int:
    if scheme is VersionScheme.SEMVER:
        return compare(scheme, _strip_v(a), _strip_v(b))
    return compare(scheme, a, b)


def _strip_v(version: str) -> str:
    return version[1:] if version[:1] in ("v", "V") else version


def compile_range(
    raw_range: Mapping[str, Any], ecosystem_scheme: VersionScheme
) -> CompiledRange | None:
    """Compile one range; None for GIT or unknown range types. Raises VersionError."""
    range_type = str(raw_range.get("type", ""))
    if range_type == "SEMVER":
        scheme = VersionScheme.SEMVER
    elif range_type == "ECOSYSTEM":
        scheme = ecosystem_scheme
    else:
        return None
    events: list[tuple[str, str]] = []
    limits: list[str] = []
    for event in raw_range.get("events", ()):
        for kind in (INTRODUCED, FIXED, LAST_AFFECTED, LIMIT):
            if kind in event:
                version = str(event[kind])
                if kind == LIMIT:
                    limits.append(version)
                else:
                    if not (kind == INTRODUCED and version == _ZERO):
                        _cmp(scheme, version, version)  # validate now, not at match time
                    events.append((kind, version))
    for limit in limits:
        if "*" not in limit:
            _cmp(scheme, limit, limit)
    events.sort(key=lambda e: _event_sort_key(scheme, e[0], e[1]))
    return CompiledRange(
        scheme=scheme, events=tuple(events), limits=tuple(limits), range_type=range_type
    )


def compile_affected(affected: Mapping[str, Any]) -> CompiledAffected:
    """Compile an OSV ``affected[]`` entry (see module docstring)."""
    package = affected.get("package") or {}
    ecosystem = str(package.get("ecosystem", ""))
    scheme = scheme_for_ecosystem(ecosystem)
    ranges: list[CompiledRange] = []
    skipped: list[str] = []
    for index, raw_range in enumerate(affected.get("ranges") or ()):
        try:
            compiled = compile_range(raw_range, scheme)
        except VersionError as error:
            skipped.append(f"range {index}: {error}")
            continue
        if compiled is not None:
            ranges.append(compiled)
    versions = frozenset(str(v) for v in affected.get("versions") or ())
    return CompiledAffected(
        ecosystem=ecosystem,
        scheme=scheme,
        ranges=tuple(ranges),
        versions=versions,
        skipped_ranges=tuple(skipped),
    )


def _describe(events: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{kind} {version}" for kind, version in events)


def _evaluate_range(compiled: CompiledRange, version: str) -> AffectedResult:
    scheme = compiled.scheme
    if compiled.limits and not any(
        "*" in limit or _cmp(scheme, version, limit) < 0 for limit in compiled.limits
    ):
        return NOT_AFFECTED
    affected = False
    opened_at = -1
    for index, (kind, bound) in enumerate(compiled.events):
        if kind == INTRODUCED:
            if bound == _ZERO or _cmp(scheme, version, bound) >= 0:
                affected = True
                opened_at = index
        elif kind == FIXED:
            if _cmp(scheme, version, bound) >= 0:
                affected = False
        elif _cmp(scheme, version, bound) > 0:  # last_affected
            affected = False
    if not affected:
        return NOT_AFFECTED
    later = compiled.events[opened_at + 1 :]
    closing = next((e for e in later if e[0] in (FIXED, LAST_AFFECTED)), None)
    shown = [compiled.events[opened_at]] + ([closing] if closing else [])
    # events are sorted, so the first fixed event above the version is the smallest one
    fixed = next((b for k, b in later if k == FIXED and _cmp(scheme, version, b) < 0), None)
    return AffectedResult(
        affected=True, reason=_describe(shown), fixed_versions=(fixed,) if fixed else ()
    )


def evaluate(compiled: CompiledAffected, version: str) -> AffectedResult:
    """Evaluate ``version`` against a compiled entry; VersionError if it does not parse."""
    matches = [
        result
        for result in (_evaluate_range(r, version) for r in compiled.ranges)
        if result.affected
    ]
    if matches:
        if len(matches) == 1:
            return matches[0]
        # overlapping ranges (the schema says they should not, feeds still do): report the
        # first, offer the smallest fix any of them names
        fixes = sorted(
            {f for m in matches for f in m.fixed_versions},
            key=_version_cmp_key(compiled.scheme),
        )
        return AffectedResult(
            affected=True, reason=matches[0].reason, fixed_versions=tuple(fixes[:1])
        )
    if version in compiled.versions:
        return AffectedResult(affected=True, reason=LISTED_IN_VERSIONS)
    if not compiled.ranges and compiled.versions:
        # validate the installed version even when only the list decided
        _cmp(compiled.scheme, version, version)
    return NOT_AFFECTED


def is_affected(affected: Mapping[str, Any], version: str) -> AffectedResult:
    """Convenience: compile and evaluate in one call (the index should pre-compile)."""
    return evaluate(compile_affected(affected), version)
