"""The compiled advisory index: OSV records keyed by (ecosystem, normalised package name).

One file, zstd-compressed JSON (never pickle: the index travels through Blob Storage, and
unpickling a blob would run whatever code it holds). Shape, version 1::

    {
      "format": "acr-scan-advisory-index", "version": 1,
      "built": "2024-10-10T12:00:00Z",            # UTC build time
      "sources": ["…/pypi-pypa-advisory-database", …],
      "counts": {"PyPI": 2662, "Go": 4291, …},     # records per base ecosystem
      "advisories": {"<id>": {<metadata shared by every affected entry>}},
      "packages": {"<ecosystem>": {"<name>": [["<id>", {<affected entry>}], …]}},
      "rejected": [{"id": "<id>", "modified": "…", "reason": "<one line>",
                    "keys": [["<ecosystem>", "<name>"], …]}, …]
    }

A record that cannot be compiled (a wrong type, a version the ecosystem cannot parse) is
*rejected*, never dropped silently: it is listed under ``rejected`` with the first problem as
its reason, and the (ecosystem, package) keys it was about are kept, so a package that meets
one is reported as not fully assessed instead of "not affected". An affected entry whose
ranges cannot be compiled but which lists its affected ``versions`` is matched by that list
(as osv.dev does) and not rejected; the problem stays in its ``skipped_ranges``.

An affected entry holds the ranges pre-compiled by ``scanning.versions.osv_ranges`` (events
sorted once at build time, so matching never sorts), the enumerated ``versions`` and the small
scalar parts of ``ecosystem_specific``/``database_specific`` that severity and fix status read.
Large per-package lists (Ubuntu binaries, Go import symbols, Chainguard components) are dropped:
matching does not read them and they would triple the size of the index.

Compile: ``compile_index(iter_records(path) …)``; write: ``write_index``; read: ``load_index``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard

from scanning.advisories.ecosystems import base_ecosystem, normalize_name
from scanning.errors import AdvisoryError
from scanning.versions import VersionError, VersionScheme, osv_ranges, scheme_for_ecosystem

logger = logging.getLogger(__name__)

INDEX_FORMAT = "acr-scan-advisory-index"
INDEX_VERSION = 1
# A decompressed index of every osv.dev ecosystem is a few GB at most; cap what we inflate.
MAX_INDEX_BYTES = 8 * 1024 * 1024 * 1024
# Text kept per advisory: the summary and the start of the details are enough for a report;
# the full text is one click away in the references.
MAX_DETAILS_CHARS = 2000
MAX_REFERENCES = 20
ZSTD_LEVEL = 6

Entry = tuple[str, dict[str, Any]]
LookupKey = tuple[str, str]  # (ecosystem, normalised package name), as ``lookup`` uses them
_EVENT_KINDS = (osv_ranges.INTRODUCED, osv_ranges.FIXED, osv_ranges.LAST_AFFECTED,
                osv_ranges.LIMIT)
# Ecosystem name under which rejected records that name no package are counted.
UNKNOWN_ECOSYSTEM = "(unknown)"


@dataclass(slots=True, kw_only=True)
class AdvisoryIndex:
    """The loaded index. Mutable only while it is being compiled."""

    built: str
    sources: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    advisories: dict[str, dict[str, Any]] = field(default_factory=dict)
    packages: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # Records that could not be compiled: {"id", "modified", "reason", "keys"}, sorted by id.
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # ecosystem -> normalised name -> (id, modified) of the rejected records about it.
    rejected_keys: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    # Entries are turned into CompiledAffected on first use, keyed by the entry's identity:
    # loading stays one json.loads, and a re-match touches only the packages it meets.
    _compiled: dict[int, osv_ranges.CompiledAffected] = field(default_factory=dict, repr=False)
    # Per-entry values derived by the matcher (severity, aliases), keyed the same way.
    memo: dict[int, object] = field(default_factory=dict, repr=False, compare=False)
    # Per-lookup results of the matcher (scanning.matching: what (ecosystem, name, version)
    # hits, and its signature), so images sharing packages are compared once per index.
    lookup_memo: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False,
                                                    compare=False)
    # Per-package results of the matcher (scanning.matching: a package's findings), for the
    # images that share the package.
    package_memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False,
                                                     compare=False)
    # Whether any record names a package, by the package fields its lookup names come from
    # (scanning.matching): most packages have no advisory, and an image meets them all.
    name_memo: dict[tuple[Any, ...], bool] = field(default_factory=dict, repr=False,
                                                   compare=False)

    def compiled(self, entry: Mapping[str, Any]) -> osv_ranges.CompiledAffected:
        """The pre-compiled ranges of one affected entry from ``lookup``."""
        key = id(entry)
        found = self._compiled.get(key)
        if found is None:
            found = osv_ranges.CompiledAffected.from_json(entry["ranges"])
            self._compiled[key] = found
        return found

    def lookup(self, ecosystem: str, name: str) -> list[Any]:
        """``[[advisory_id, affected_entry], …]`` for one package in one ecosystem."""
        by_name = self.packages.get(ecosystem)
        if not by_name:
            return []
        return by_name.get(normalize_name(ecosystem, name), [])

    def rejected_for(self, ecosystem: str, name: str) -> list[tuple[str, str]]:
        """(id, modified) of the rejected records about one package (the name normalised as
        ``lookup`` does)."""
        by_name = self.rejected_keys.get(ecosystem)
        if not by_name:
            return []
        return by_name.get(normalize_name(ecosystem, name), [])

    def rejected_counts(self) -> dict[str, int]:
        """Rejected records per base ecosystem (a record about two ecosystems counts in
        both; one that names no package under ``(unknown)``)."""
        counts: dict[str, int] = {}
        for record in self.rejected:
            bases = {base_ecosystem(ecosystem) for ecosystem, _ in record["keys"]}
            for base in bases or {UNKNOWN_ECOSYSTEM}:
                counts[base] = counts.get(base, 0) + 1
        return dict(sorted(counts.items()))

    def has_ecosystem(self, ecosystem: str) -> bool:
        # An ecosystem whose every record was rejected is still one the index speaks about:
        # its packages must be reported as not assessed, not as "no records".
        return ecosystem in self.packages or ecosystem in self.rejected_keys

    def ecosystems(self) -> tuple[str, ...]:
        return tuple(sorted(self.packages.keys() | self.rejected_keys.keys()))

    def advisory(self, advisory_id: str) -> dict[str, Any]:
        return self.advisories[advisory_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "built": self.built,
            "sources": list(self.sources),
            "counts": dict(sorted(self.counts.items())),
            "advisories": self.advisories,
            "packages": self.packages,
            "rejected": self.rejected,
        }


def compile_index(
    records: Iterable[Mapping[str, Any]],
    *,
    sources: Iterable[str] = (),
    ecosystems: Iterable[str] = (),
    built: datetime | None = None,
    rejected: Iterable[Mapping[str, Any]] = (),
) -> AdvisoryIndex:
    """Compile OSV records into an index.

    ``rejected``: records a feed adapter could not even turn into OSV (``{"id", "modified",
    "reason", "keys": [[ecosystem, name], …]}``); they join the index's rejected list as they
    are, so the packages they name are reported as not assessed like any other.

    ``ecosystems`` keeps only affected entries whose base ecosystem is listed (all when empty).
    Withdrawn records are dropped. When two records share an id (the same feed read twice, or a
    mirror overlapping a folder), the one with the later ``modified`` wins. Records that cannot
    be compiled end up in ``rejected`` (see the module docstring); their good affected entries
    are still indexed.
    """
    wanted = {base_ecosystem(e) for e in ecosystems}
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("withdrawn"):
            continue
        advisory_id = str(record["id"])
        previous = latest.get(advisory_id)
        if previous is None or str(record.get("modified", "")) >= str(previous.get("modified", "")):
            latest[advisory_id] = record
    moment = (built or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    index = AdvisoryIndex(built=moment, sources=tuple(sources))
    for record in rejected:
        entry = {"id": str(record["id"]), "modified": str(record.get("modified") or ""),
                 "reason": str(record["reason"]),
                 "keys": [[ecosystem, normalize_name(ecosystem, name)]
                          for ecosystem, name in record.get("keys") or ()]}
        index.rejected.append(entry)
        _add_rejected_keys(index.rejected_keys, entry)
    for advisory_id in sorted(latest):
        record = latest[advisory_id]
        compiled = _compile_record(advisory_id, record, wanted)
        if compiled.problems:
            _reject(index, advisory_id, record, compiled)
        if not compiled.entries:
            continue
        index.advisories[advisory_id] = _metadata(record)
        counted: set[str] = set()
        for ecosystem, name, entry in compiled.entries:
            index.packages.setdefault(ecosystem, {}).setdefault(name, []).append(
                [advisory_id, entry]
            )
            base = base_ecosystem(ecosystem)
            if base not in counted:
                counted.add(base)
                index.counts[base] = index.counts.get(base, 0) + 1
    return index


def _reject(
    index: AdvisoryIndex, advisory_id: str, record: Mapping[str, Any], compiled: _Compiled
) -> None:
    more = len(compiled.problems) - 1
    reason = compiled.problems[0] + (f" (and {more} more)" if more else "")
    logger.warning("advisory %s rejected: %s", advisory_id, reason)
    keys = list(dict.fromkeys(compiled.rejected_keys))
    index.rejected.append({
        "id": advisory_id,
        "modified": str(record.get("modified") or ""),
        "reason": reason,
        "keys": [list(key) for key in keys],
    })
    _add_rejected_keys(index.rejected_keys, index.rejected[-1])


def _add_rejected_keys(
    rejected_keys: dict[str, dict[str, list[tuple[str, str]]]], record: Mapping[str, Any]
) -> None:
    for ecosystem, name in record["keys"]:
        rejected_keys.setdefault(ecosystem, {}).setdefault(name, []).append(
            (record["id"], record["modified"])
        )


@dataclass(slots=True, kw_only=True)
class _Compiled:
    """One record's compiled entries, its problems and the keys it could not be compiled for
    (filled while that record compiles, like the index itself)."""

    entries: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rejected_keys: list[LookupKey] = field(default_factory=list)


def _type_name(value: object) -> str:
    """JSON's words for a value's type, for reasons such as "expected a string, got a list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _compile_record(advisory_id: str, record: Mapping[str, Any], wanted: set[str]) -> _Compiled:
    compiled = _Compiled()
    affected = record.get("affected")
    if affected is None:
        return compiled
    if not isinstance(affected, list):
        compiled.problems.append(f"affected: expected a list, got {_type_name(affected)}")
        return compiled
    for position, item in enumerate(affected):
        _compile_entry(advisory_id, compiled, f"affected[{position}]", item, wanted)
    return compiled


def _compile_entry(
    advisory_id: str, compiled: _Compiled, where: str, item: object, wanted: set[str]
) -> None:
    if not isinstance(item, Mapping):
        compiled.problems.append(f"{where}: expected an object, got {_type_name(item)}")
        return
    package = item.get("package")
    if package is None:
        return  # schema 1.x allows affected entries without a package (e.g. only a git repo)
    if not isinstance(package, Mapping):
        compiled.problems.append(f"{where}.package: expected an object, got {_type_name(package)}")
        return
    for part in ("ecosystem", "name"):
        value = package.get(part)
        if value is not None and not isinstance(value, str):
            compiled.problems.append(
                f"{where}.package.{part}: expected a string, got {_type_name(value)}"
            )
            return
    ecosystem = str(package.get("ecosystem") or "").strip()
    name = str(package.get("name") or "").strip()
    if not ecosystem or not name:
        return
    if wanted and base_ecosystem(ecosystem) not in wanted:
        return
    key = (ecosystem, normalize_name(ecosystem, name))
    scheme = scheme_for_ecosystem(ecosystem)
    range_problems: list[str] = []
    ranges = _compile_ranges(where, item.get("ranges"), scheme, range_problems)
    versions, version_problems = _versions(where, item.get("versions"))
    if version_problems or (range_problems and not versions):
        compiled.problems.extend(range_problems + version_problems)
        compiled.rejected_keys.append(key)
    elif range_problems:
        logger.info("advisory %s %s %s: matched by its versions list: %s", advisory_id,
                    ecosystem, name, range_problems[0])
    if not ranges and not versions:
        return  # nothing a package version can be checked against (GIT ranges only)
    entry: dict[str, Any] = {"ranges": osv_ranges.CompiledAffected(
        ecosystem=ecosystem, scheme=scheme, ranges=tuple(ranges), versions=frozenset(versions),
        skipped_ranges=tuple(range_problems),
    ).to_json()}
    ecosystem_specific = _scalars(item.get("ecosystem_specific"))
    if ecosystem_specific:
        entry["es"] = ecosystem_specific
    database_specific = _scalars(item.get("database_specific"))
    if database_specific:
        entry["ds"] = database_specific
    severity = _severity(item.get("severity"))
    if severity:
        entry["severity"] = severity
    compiled.entries.append((key[0], key[1], entry))


def _compile_ranges(
    where: str, raw_ranges: object, scheme: VersionScheme, problems: list[str]
) -> list[osv_ranges.CompiledRange]:
    """The ECOSYSTEM and SEMVER ranges that compile; a problem for each one that does not."""
    if raw_ranges is None:
        return []
    if not isinstance(raw_ranges, list):
        problems.append(f"{where}.ranges: expected a list, got {_type_name(raw_ranges)}")
        return []
    ranges: list[osv_ranges.CompiledRange] = []
    for position, raw_range in enumerate(raw_ranges):
        at = f"{where}.ranges[{position}]"
        problem = _range_shape_problem(at, raw_range)
        if problem:
            problems.append(problem)
            continue
        try:
            compiled = osv_ranges.compile_range(raw_range, scheme)
        except VersionError:
            problems.append(_bad_event(at, raw_range, scheme))
            continue
        if compiled is not None:
            ranges.append(compiled)
    return ranges


def _range_shape_problem(at: str, raw_range: object) -> str:
    if not isinstance(raw_range, Mapping):
        return f"{at}: expected an object, got {_type_name(raw_range)}"
    range_type = raw_range.get("type")
    if not isinstance(range_type, str):
        return f"{at}.type: expected a string, got {_type_name(range_type)}"
    if range_type not in ("ECOSYSTEM", "SEMVER"):
        return ""  # GIT ranges name commits, not versions: never evaluated
    events = raw_range.get("events")
    if not isinstance(events, list):
        return f"{at}.events: expected a list, got {_type_name(events)}"
    for position, event in enumerate(events):
        if not isinstance(event, Mapping):
            return f"{at}.events[{position}]: expected an object, got {_type_name(event)}"
        for kind in _EVENT_KINDS:
            if kind in event and not isinstance(event[kind], str):
                return (f"{at}.events[{position}].{kind}: expected a string, "
                        f"got {_type_name(event[kind])}")
    return ""


def _bad_event(at: str, raw_range: Mapping[str, Any], scheme: VersionScheme) -> str:
    """Which event of a range that did not compile holds the version the scheme refuses
    (each event compiled alone: this runs only for the few ranges that fail)."""
    for position, event in enumerate(raw_range["events"]):
        for kind in _EVENT_KINDS:
            if kind not in event:
                continue
            try:
                osv_ranges.compile_range(
                    {"type": raw_range["type"], "events": [{kind: event[kind]}]}, scheme
                )
            except VersionError as error:
                return f"{at}.events[{position}].{kind}: {error}"
    return f"{at}: its events cannot be compiled together"


def _versions(where: str, raw_versions: object) -> tuple[list[str], list[str]]:
    """The enumerated versions, and a problem when the list is not a list of strings."""
    if raw_versions is None:
        return [], []
    if not isinstance(raw_versions, list):
        return [], [f"{where}.versions: expected a list, got {_type_name(raw_versions)}"]
    for position, version in enumerate(raw_versions):
        if not isinstance(version, str):
            return [], [f"{where}.versions[{position}]: expected a string, "
                        f"got {_type_name(version)}"]
    return list(raw_versions), []


def _metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    details = str(record.get("details") or "")
    if len(details) > MAX_DETAILS_CHARS:
        details = details[:MAX_DETAILS_CHARS].rstrip() + "…"
    references = [
        str(ref["url"])
        for ref in (record.get("references") or [])
        if isinstance(ref, Mapping) and ref.get("url")
    ][:MAX_REFERENCES]
    metadata: dict[str, Any] = {
        "aliases": _strings(record.get("aliases")),
        "upstream": _strings(record.get("upstream")),
        "related": _strings(record.get("related")),
        "summary": str(record.get("summary") or ""),
        "details": details,
        "published": str(record.get("published") or ""),
        "modified": str(record.get("modified") or ""),
        "references": references,
        "severity": _severity(record.get("severity")),
    }
    database_specific = _scalars(record.get("database_specific"))
    if database_specific:
        metadata["ds"] = database_specific
    return metadata


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str) and item]


def _severity(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        {"type": str(item.get("type", "")), "score": str(item.get("score", ""))}
        for item in value
        if isinstance(item, Mapping) and item.get("score")
    ]


def _scalars(value: object) -> dict[str, Any]:
    """The scalar (str/int/float/bool) items of a ``*_specific`` object."""
    if not isinstance(value, Mapping):
        return {}
    return {
        str(key): item for key, item in value.items() if isinstance(item, str | int | float | bool)
    }


def write_index(index: AdvisoryIndex, path: Path) -> None:
    """Write atomically (temp file + rename): a reader never sees half an index."""
    document = index.to_json()
    try:
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate in some record's text (JSON allows the escape; UTF-8 cannot hold
        # it): escaped, it reads back as the same text instead of failing the whole index.
        data = json.dumps(document, separators=(",", ":")).encode()
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".tmp{os.getpid()}")
    temporary.write_bytes(compressed)
    os.replace(temporary, path)


def load_index(path: Path) -> AdvisoryIndex:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AdvisoryError(f"cannot read the advisory index {path}: {error}") from error
    return parse_index(data, str(path))


def parse_index(data: bytes, where: str) -> AdvisoryIndex:
    started = time.perf_counter()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        raw = reader.read(MAX_INDEX_BYTES + 1)
    except zstandard.ZstdError as error:
        raise AdvisoryError(f"{where}: not a compressed advisory index: {error}") from error
    if len(raw) > MAX_INDEX_BYTES:
        raise AdvisoryError(f"{where}: decompresses to more than {MAX_INDEX_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise AdvisoryError(f"{where}: advisory index is not valid JSON: {error}") from error
    if (
        not isinstance(document, dict)
        or document.get("format") != INDEX_FORMAT
        or document.get("version") != INDEX_VERSION
    ):
        raise AdvisoryError(
            f"{where}: not an {INDEX_FORMAT} version {INDEX_VERSION} file; rebuild it with "
            "`python -m scanning db build`"
        )
    rejected: list[dict[str, Any]] = document.get("rejected") or []
    rejected_keys: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for record in rejected:
        _add_rejected_keys(rejected_keys, record)
    index = AdvisoryIndex(
        built=str(document.get("built", "")),
        sources=tuple(document.get("sources") or ()),
        counts=dict(document.get("counts") or {}),
        advisories=document.get("advisories") or {},
        packages=document.get("packages") or {},
        rejected=rejected,
        rejected_keys=rejected_keys,
    )
    logger.debug("loaded advisory index %s in %.3f s", where, time.perf_counter() - started)
    return index


# ------------------------------------------------------------------------------- index diff
#
# The weekly rescan re-matches an image only when the advisories of one of its packages
# changed. What can change a package's findings is the list of advisories under its lookup key
# (ecosystem, normalised name) and their content; OSV bumps ``modified`` on every change of a
# record (https://ossf.github.io/osv-schema/#id-modified-fields), so the (id, modified) pairs
# under a key stand for its content. An ecosystem that appears or disappears changes the
# status of every image that uses it ("the advisory index has no records for …"). A rejected
# record under a key counts as ``!<id>|<modified>``: a package meeting it is reported as not
# assessed, so a record becoming (or ceasing to be) rejected changes that key.

KEY_FINGERPRINTS_FORMAT = "acr-scan-index-keys"
# Decompressed size cap when reading a stored key-fingerprint document back.
MAX_KEY_FINGERPRINT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexChange:
    """What differs between two indexes: lookup keys whose advisories differ, and ecosystems
    present in only one of them."""

    keys: frozenset[LookupKey] = frozenset()
    ecosystems: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.keys and not self.ecosystems


def key_fingerprints(index: AdvisoryIndex) -> dict[LookupKey, str]:
    """Per lookup key, 16 hex digits of BLAKE2b over its sorted
    ``<id>|<modified>|<content>`` texts, rejected records as ``!<id>|<modified>`` (and the
    index format version, so a format change changes every key). ``content`` is a digest of
    what matching reads of the advisory under that key: its compiled affected entry and its
    metadata (severity, aliases, summary…), as canonical JSON. So an index compiled by other
    code from the same records (a parser fix: other ranges or another severity, while no
    record's ``modified`` moved) differs in the keys it reads differently: the refresh
    publishes it and the rescan re-checks the images those keys concern."""
    metadata: dict[str, str] = {}

    def content(advisory_id: str, entry: Any) -> str:
        found = metadata.get(advisory_id)
        if found is None:
            found = metadata[advisory_id] = _canonical_digest(
                index.advisories.get(advisory_id, {}))
        return f"{found}{_canonical_digest(entry)}"

    pairs: dict[LookupKey, list[str]] = {}
    for ecosystem, by_name in index.packages.items():
        for name, entries in by_name.items():
            pairs[(ecosystem, name)] = [
                f"{entry[0]}|{index.advisories.get(entry[0], {}).get('modified', '')}|"
                f"{content(entry[0], entry[1])}"
                for entry in entries
            ]
    for record in index.rejected:
        for ecosystem, name in record["keys"]:
            pairs.setdefault((ecosystem, name), []).append(f"!{record['id']}|{record['modified']}")
    fingerprints: dict[LookupKey, str] = {}
    for key, texts in pairs.items():
        text = "\n".join([str(INDEX_VERSION), *sorted(texts)])
        fingerprints[key] = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return fingerprints


def _canonical_digest(value: Any) -> str:
    """16 hex digits of BLAKE2b over ``value`` as canonical JSON (sorted keys, no spaces):
    equal for a compiled value and the same value read back from the index file. orjson
    (~5x faster: this runs for every entry of the index), or the standard library for what
    orjson refuses (a lone surrogate, which an advisory's text can hold); the same value
    takes the same path on both sides."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def content_fingerprint(fingerprints: Mapping[LookupKey, str]) -> str:
    """One SHA-256 over every key's fingerprint: equal when two indexes match alike."""
    digest = hashlib.sha256()
    for (ecosystem, name), value in sorted(fingerprints.items()):
        digest.update(json.dumps([ecosystem, name, value]).encode() + b"\n")
    return digest.hexdigest()


def diff_key_fingerprints(
    old: Mapping[LookupKey, str], new: Mapping[LookupKey, str]
) -> IndexChange:
    """The keys whose fingerprint differs or that only one side has, and the ecosystems only
    one side has."""
    keys = {key for key, value in new.items() if old.get(key) != value}
    keys.update(key for key in old if key not in new)
    old_ecosystems = {ecosystem for ecosystem, _ in old}
    new_ecosystems = {ecosystem for ecosystem, _ in new}
    return IndexChange(keys=frozenset(keys), ecosystems=frozenset(old_ecosystems ^ new_ecosystems))


def encode_key_fingerprints(fingerprints: Mapping[LookupKey, str]) -> bytes:
    """zlib-compressed JSON ``{"format", "version", "keys": [[ecosystem, name, fp], …]}``,
    sorted (JSON, not tab-separated text: package names come from hostile images)."""
    document = {
        "format": KEY_FINGERPRINTS_FORMAT,
        "version": 1,
        "keys": [
            [ecosystem, name, value] for (ecosystem, name), value in sorted(fingerprints.items())
        ],
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)


def decode_key_fingerprints(data: bytes) -> dict[LookupKey, str]:
    """The inverse of ``encode_key_fingerprints``; AdvisoryError when it is not one."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_KEY_FINGERPRINT_BYTES + 1)
        if len(raw) > MAX_KEY_FINGERPRINT_BYTES or inflater.unconsumed_tail:
            raise AdvisoryError("index key fingerprints decompress to too many bytes")
        document = json.loads(raw)
    except (zlib.error, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise AdvisoryError(f"not an index key fingerprint document: {error}") from error
    if not isinstance(document, dict) or document.get("format") != KEY_FINGERPRINTS_FORMAT:
        raise AdvisoryError("not an index key fingerprint document")
    fingerprints: dict[LookupKey, str] = {}
    for item in document.get("keys") or ():
        if not (isinstance(item, list) and len(item) == 3
                and all(isinstance(part, str) for part in item)):
            raise AdvisoryError(f"malformed index key fingerprint entry: {item!r:.80}")
        fingerprints[(item[0], item[1])] = item[2]
    return fingerprints
