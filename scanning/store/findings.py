"""An image's findings (its sub-assessments), stored with its image row, replaced in one write.

An assessment's findings are one *document*: zstd-compressed JSON of every platform's findings
(``encode_findings``). It lives in the image row itself, split over binary columns
``findings_doc_0…`` (a binary property holds at most 64 KiB, a row at most 1 MiB), so the
row's summary (status, counts, versions) and its findings change in the same single write:
readers see the old assessment or the new one, never a mix or nothing, and the weekly rescan
can merge the rows of many changed images in one 100-row transaction.

A document too large for the row (thousands of findings with long descriptions) goes to the
blob ``findings/<registry>/<digest>/<generation>`` instead, written before the row points at
it; the previous blob is deleted after the row moved on. A reader that meets a blob deleted
under it reads the row again. Blobs left behind by a writer that died before the row write are
invisible and are removed by the next save of that image once older than
``STALE_GENERATION``.

Cross-image queries (``query``) must not read every document: the row also carries the
document's *keys*, one short entry per finding (``[platform index, id, aliases, package,
source package, version, severity rank, fix status, disabled]``), compressed in binary columns
``findings_keys_0…``. A query pages through the image rows (summary and keys only, narrowed by
the service on registry, repository, deleted and, for a severity filter, the count columns),
filters the keys, and reads the whole row only of images with a hit. Keys too large for the
row (``findings_keys_external``) are taken from the document instead.

Cost of a save: one read and one conditional write of the image row (plus a blob write and
delete for oversized documents), whatever the number of findings. The table layout this
replaced (one row per finding under a generation pointer) needed a transaction per 100
findings to write a generation and another to delete the previous one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
import zstandard

from scanning.errors import NotFound, StoreError, TransientStoreError
from scanning.model import (
    AssessmentStatus,
    AssessmentSummary,
    CvssScore,
    Finding,
    FindingCounts,
    FixStatus,
    MatchDetail,
    PackageType,
    PlatformFindings,
    ScanTrigger,
    Severity,
    count_findings,
    finding_key,
)
from scanning.store.blobs import BlobKind, BlobStore
from scanning.store.entities import as_str, bounded_text, inflate, storage_errors, utc
from scanning.store.images import (
    CHUNK,
    DOCUMENT_COLUMN,
    KEYS_COLUMN,
    MAX_CHUNKS,
    MAX_KEYS_CHUNKS,
    SUMMARY_COLUMNS,
    ImageFilter,
    ImageRecord,
    ImageTable,
    PlatformDetail,
    StoredFindings,
    as_bytes,
    count_column,
    counts_to_entity,
    image_from_entity,
    image_query,
    new_image_row,
    platform_details_to_json,
    stored_findings_from_entity,
)
from scanning.store.images import KEYS_COLUMNS as _KEYS_COLUMNS
from scanning.store.keys import encode_key
from scanning.store.paging import Page, check_page_size, decode_token_part, encode_token

log = logging.getLogger(__name__)

FORMAT = 1
STALE_GENERATION = timedelta(hours=24)
MAX_READ_ATTEMPTS = 5
# A document or key list never inflates beyond this (a hostile or corrupt value is refused).
MAX_DOCUMENT_JSON = 256 * 1024 * 1024
ZSTD_LEVEL = 3
# Query: image rows read from the service per page; a call stops after this many pages.
QUERY_SERVICE_PAGE = 1000
MAX_QUERY_SERVICE_PAGES = 20
QUERY_COLUMNS: tuple[str, ...] = (*SUMMARY_COLUMNS, *_KEYS_COLUMNS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """What ``save`` stores for an image: the outcome of one scan or re-match."""

    status: AssessmentStatus
    assessed_at: datetime
    results: tuple[PlatformFindings, ...] = ()
    # The scan's own conclusion before disable rules (defaults to ``status``); kept so rules
    # can be re-applied later (scanning.rules.assessment_status).
    analysis_status: AssessmentStatus | None = None
    reason: str = ""
    analyzer_version: str = ""
    index_version: str = ""
    # The code that matched (``scanning.matcher_version``); "" when nothing was matched.
    matcher_version: str = ""
    scan_id: str = ""
    trigger: ScanTrigger | None = None
    # ``images.encode_match_keys`` of the assessed inventories; b"" when unknown.
    match_keys: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveResult:
    applied: bool  # False: a newer assessment was already stored


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingHit:
    """One finding of a cross-image query, with the image it belongs to."""

    registry: str
    repository: str
    digest: str
    platform: str
    manifest_digest: str
    finding: Finding


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingFilter:
    """Filters of ``query``; all given ones must hold.

    ``vulnerability_id`` matches the finding id or one of its aliases and ``package`` the
    package or the source package, both ignoring case (``cve-2024-1`` finds ``CVE-2024-1``,
    ``PyYAML`` finds ``pyyaml``). ``severity`` keeps findings at or above it.
    """

    vulnerability_id: str = ""
    package: str = ""
    severity: Severity | None = None
    # Any of these (Defender's NoFixAvailable is two of acr-scan's); None: any status.
    fix_statuses: frozenset[FixStatus] | None = None
    registry: str = ""
    repository: str = ""
    include_disabled: bool = True
    include_deleted_images: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedFindings:
    """An assessment's findings as stored: ``document`` and ``keys`` compressed."""

    document: bytes
    keys: bytes
    fingerprint: str  # sha256 of the document's JSON: equal findings, equal fingerprint
    counts: FindingCounts
    total: int


def new_generation() -> str:
    """``g`` + microseconds since the epoch (17 digits) + 8 random hex digits."""
    return f"g{time.time_ns() // 1000:017d}{secrets.token_hex(4)}"


def generation_time(generation: str) -> datetime | None:
    try:
        micros = int(generation[1:18])
    except ValueError:
        return None
    return datetime.fromtimestamp(micros / 1_000_000).astimezone()


# ------------------------------------------------------------------------------ encoding

_local = threading.local()


def _compress(data: bytes) -> bytes:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return cast(bytes, compressor.compress(data))


def _decompress(data: bytes, what: str) -> Any:
    raw = inflate(data, MAX_DOCUMENT_JSON, what)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise StoreError(f"{what} is unreadable: {error}") from error


def finding_to_json(finding: Finding) -> dict[str, Any]:
    """A finding as a document entry for ``orjson.dumps``; free texts are cut to what a table
    property holds, as the row layout did, so a hostile advisory cannot make a document
    unbounded. Enum members are left as they are (orjson writes a member as its value, a
    ``StrEnum`` as its text): ``.value`` costs ~0.6 us a read, four or more per finding."""
    entry: dict[str, Any] = {
        "id": finding.id, "aliases": list(finding.aliases), "package": finding.package,
        "installed_version": finding.installed_version,
        "package_type": finding.package_type, "purl": bounded_text(finding.purl),
        "source_package": finding.source_package, "fixed_version": finding.fixed_version,
        "fix_status": finding.fix_status, "severity": finding.severity,
        "vendor_severity": finding.vendor_severity,
        "cvss": [[score.version, score.vector, score.base_score, score.severity]
                 for score in finding.cvss],
        "remediation": bounded_text(finding.remediation),
        "summary": bounded_text(finding.summary),
        "description": bounded_text(finding.description),
        "published": finding.published, "modified": finding.modified,
        "references": list(finding.references), "layer_digest": finding.layer_digest,
        "layer_instruction": bounded_text(finding.layer_instruction),
        "path": bounded_text(finding.path),
        "match": [finding.match.ecosystem, finding.match.searched_name,
                  finding.match.searched_version, finding.match.range],
        "disabled_by": finding.disabled_by,
    }
    if finding.extra:
        entry["extra"] = dict(sorted(finding.extra.items()))
    return entry


# Encoded entries of findings met before (``finding_to_json`` as orjson bytes), by the
# finding's identity: the matcher hands each image with a package version it has matched
# already the same finding objects (``AdvisoryIndex.package_memo``), so a rescan encodes a
# finding once, not once per image that has it. An entry holds its finding, so the id cannot
# be reused while it is here. Emptied when it holds MAX_ENCODED_FINDINGS entries or
# MAX_ENCODED_BYTES of them (~1-2 KB an entry; a finding's texts can reach ~100 KB).
MAX_ENCODED_FINDINGS = 20_000
MAX_ENCODED_BYTES = 32 * 1024 * 1024


class _EncodedEntries:
    def __init__(self) -> None:
        self.entries: dict[int, tuple[Finding, orjson.Fragment]] = {}
        self.size = 0

    def get(self, finding: Finding) -> orjson.Fragment:
        """``finding_to_json(finding)`` as orjson writes it, remembered by identity (a finding
        is immutable: its rules and layer are set on copies)."""
        hit = self.entries.get(id(finding))
        if hit is not None and hit[0] is finding:
            return hit[1]
        data = orjson.dumps(finding_to_json(finding))
        if len(self.entries) >= MAX_ENCODED_FINDINGS or self.size >= MAX_ENCODED_BYTES:
            self.entries.clear()
            self.size = 0
        fragment = orjson.Fragment(data)
        self.entries[id(finding)] = (finding, fragment)
        self.size += len(data)
        return fragment


_ENCODED = _EncodedEntries()


def finding_from_json(entry: Mapping[str, Any]) -> Finding:
    try:
        ecosystem, searched_name, searched_version, matched_range = entry["match"]
        return Finding(
            id=str(entry["id"]), aliases=tuple(map(str, entry["aliases"])),
            package=str(entry["package"]), installed_version=str(entry["installed_version"]),
            package_type=PackageType(entry["package_type"]), purl=str(entry["purl"]),
            source_package=str(entry["source_package"]),
            fixed_version=str(entry["fixed_version"]),
            fix_status=FixStatus(entry["fix_status"]), severity=Severity(entry["severity"]),
            vendor_severity=str(entry["vendor_severity"]),
            cvss=tuple(CvssScore(version=str(version), vector=str(vector),
                                 base_score=float(score), severity=Severity(severity))
                       for version, vector, score, severity in entry["cvss"]),
            remediation=str(entry["remediation"]), summary=str(entry["summary"]),
            description=str(entry["description"]), published=str(entry["published"]),
            modified=str(entry["modified"]), references=tuple(map(str, entry["references"])),
            layer_digest=str(entry["layer_digest"]),
            layer_instruction=str(entry["layer_instruction"]), path=str(entry["path"]),
            match=MatchDetail(ecosystem=str(ecosystem), searched_name=str(searched_name),
                              searched_version=str(searched_version), range=str(matched_range)),
            disabled_by=str(entry["disabled_by"]),
            extra={str(key): str(value) for key, value in dict(entry.get("extra", {})).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StoreError(f"stored finding {entry.get('id')!r} is malformed: {error}") from error


def _finding_order(finding: Finding) -> tuple[str, ...]:
    # The package type as its member: a StrEnum compares, hashes and sorts as its text.
    return (finding.id, finding.package_type, finding.package, finding.installed_version,
            finding.path, finding.purl)


# Severity.rank without the property call (the keys are built for every finding written).
_RANKS = {severity: severity.rank for severity in Severity}


def _keys_entry(platform_index: int, finding: Finding) -> list[Any]:
    return [platform_index, finding.id, list(finding.aliases), finding.package,
            finding.source_package, finding.installed_version, _RANKS[finding.severity],
            finding.fix_status, bool(finding.disabled_by)]


_first = operator.itemgetter(0)


def encode_findings(digest: str, results: Iterable[PlatformFindings]) -> EncodedFindings:
    """The document and keys of ``results``. Findings of a platform are stored by id (then
    package); one repeated on a platform (same id, package, version, path) is stored once."""
    platforms: list[dict[str, Any]] = []
    keys: list[list[Any]] = []
    kept: list[Finding] = []
    for platform_index, result in enumerate(results):
        seen: set[tuple[str, ...]] = set()
        entries: list[orjson.Fragment] = []
        ordered = [(_finding_order(finding), finding) for finding in result.findings]
        ordered.sort(key=_first)
        for identity, finding in ordered:
            if identity in seen:
                log.warning("image %s: duplicate finding %s for %s on %s dropped",
                            digest, finding.id, finding.package, result.platform)
                continue
            seen.add(identity)
            entries.append(_ENCODED.get(finding))
            keys.append(_keys_entry(platform_index, finding))
            kept.append(finding)
        platform: dict[str, Any] = {"platform": result.platform,
                                    "manifest_digest": result.manifest_digest,
                                    "findings": entries}
        # The platform's own verdict (scanning.assessment), when decided: optional keys, so
        # documents written before they were kept still read.
        if result.analysis is not None:
            platform["analysis"] = result.analysis.value
        if result.status is not None:
            platform["status"] = result.status.value
        if result.reason:
            platform["reason"] = bounded_text(result.reason)
        if result.warnings:
            platform["warnings"] = _bounded_warnings(result.warnings)
        platforms.append(platform)
    # Entries are built in a fixed key order, so equal findings give equal bytes.
    document = orjson.dumps({"format": FORMAT, "platforms": platforms})
    return EncodedFindings(
        document=_compress(document),
        keys=_compress(orjson.dumps(keys)),
        fingerprint=hashlib.sha256(document).hexdigest(), counts=count_findings(kept),
        total=len(kept))


# Warnings kept per platform in a findings document; the inventory keeps them all.
MAX_PLATFORM_WARNINGS = 50


def _bounded_warnings(warnings: tuple[str, ...]) -> list[str]:
    if len(warnings) <= MAX_PLATFORM_WARNINGS:
        return list(warnings)
    kept = MAX_PLATFORM_WARNINGS - 1
    return [*warnings[:kept], f"{len(warnings) - kept} more warnings: the inventory lists all"]


def _status(value: object) -> AssessmentStatus | None:
    return None if value is None else AssessmentStatus(str(value))


def decode_document(data: bytes, details: tuple[PlatformDetail, ...], what: str
                    ) -> tuple[PlatformFindings, ...]:
    """The platforms of a document, in the assessment's order, each with its OS from the
    row's ``platform_details``."""
    document = _decompress(data, what)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StoreError(f"{what} is not a findings document of format {FORMAT}")
    os_by_key = {(detail.platform, detail.manifest_digest): detail.os for detail in details}
    try:
        return tuple(
            PlatformFindings(
                platform=str(platform["platform"]),
                manifest_digest=str(platform["manifest_digest"]),
                findings=tuple(finding_from_json(entry) for entry in platform["findings"]),
                os=os_by_key.get((platform["platform"], platform["manifest_digest"])),
                analysis=_status(platform.get("analysis")), status=_status(platform.get("status")),
                reason=str(platform.get("reason") or ""),
                warnings=tuple(str(text) for text in platform.get("warnings") or ()))
            for platform in document["platforms"])
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(f"{what} is malformed: {error}") from error


@dataclass(frozen=True, slots=True)
class _Key:
    platform_index: int
    ids: tuple[str, ...]  # the finding id, then its aliases
    packages: tuple[str, str]  # package and source package
    version: str
    severity_rank: int
    fix_status: str
    disabled: bool


def _key_from_entry(entry: list[Any]) -> _Key:
    """A ``_keys_entry`` read back."""
    platform, vuln_id, aliases, package, source, version, rank, fix, disabled = entry
    return _Key(platform_index=int(platform), ids=(str(vuln_id), *map(str, aliases)),
                packages=(str(package), str(source)), version=str(version),
                severity_rank=int(rank), fix_status=str(fix), disabled=bool(disabled))


def decode_keys(data: bytes, what: str) -> tuple[_Key, ...]:
    items = _decompress(data, what)
    try:
        return tuple(_key_from_entry(item) for item in items)
    except (TypeError, ValueError) as error:
        raise StoreError(f"{what} is malformed: {error}") from error


def summary_from_keys(status: AssessmentStatus, keys: Iterable[_Key]) -> AssessmentSummary:
    """What ``notify.summarise`` makes of the findings, from their keys alone."""
    return AssessmentSummary(status=status, active_finding_keys=frozenset(
        f"{key.ids[0]}|{key.packages[0]}|{key.version}" for key in keys if not key.disabled))


def summary_from_key_data(status: AssessmentStatus, data: bytes, what: str
                          ) -> AssessmentSummary:
    """``summary_from_keys(status, decode_keys(data, what))`` without building each key: the
    weekly rescan asks it for every image it gives new findings (~1 instead of ~5 us a key).
    Anything but a list of nine-field entries is a StoreError, as in ``decode_keys``."""
    items = _decompress(data, what)
    if type(items) is not list:
        raise StoreError(f"{what} is malformed: not a list")
    active: set[str] = set()
    for entry in items:
        if type(entry) is not list or len(entry) != 9:
            raise StoreError(f"{what} is malformed: an entry is not nine fields")
        if not entry[8]:  # disabled
            active.add(f"{entry[1]}|{entry[3]}|{entry[5]}")  # id, package, version
    return AssessmentSummary(status=status, active_finding_keys=frozenset(active))


def _key_matches(key: _Key, filters: FindingFilter) -> bool:
    return ((not filters.vulnerability_id
             or filters.vulnerability_id.casefold() in (name.casefold() for name in key.ids))
            and (not filters.package
                 or filters.package.casefold() in (name.casefold() for name in key.packages))
            and (filters.severity is None or key.severity_rank >= filters.severity.rank)
            and (filters.fix_statuses is None
                 or any(key.fix_status == status.value for status in filters.fix_statuses))
            and (filters.include_disabled or not key.disabled))


def _chunks(data: bytes) -> list[bytes]:
    return [data[start:start + CHUNK] for start in range(0, len(data), CHUNK)] or [b""]


def findings_columns(encoded: EncodedFindings, *, blob: str = "",
                     previous: StoredFindings | None = None) -> dict[str, Any]:
    """The row columns that store ``encoded``: the document inline unless ``blob`` names where
    it was written; with ``previous``, columns it used that the new layout does not are
    emptied (for a merge; a replace drops them instead)."""
    keys = _chunks(encoded.keys)
    keys_external = len(keys) > MAX_KEYS_CHUNKS
    if keys_external:
        keys = []
    document = [] if blob else _chunks(encoded.document)
    columns: dict[str, Any] = {
        "findings_format": FORMAT, "findings_total": encoded.total,
        "findings_fingerprint": encoded.fingerprint, "findings_blob": blob,
        "findings_doc_n": len(document), "findings_keys_n": len(keys),
        "findings_keys_external": keys_external,
    }
    columns.update((DOCUMENT_COLUMN.format(n), chunk) for n, chunk in enumerate(document))
    columns.update((KEYS_COLUMN.format(n), chunk) for n, chunk in enumerate(keys))
    if previous is not None:
        columns.update((DOCUMENT_COLUMN.format(n), b"")
                       for n in range(len(document), previous.document_chunks))
        columns.update((KEYS_COLUMN.format(n), b"")
                       for n in range(len(keys), previous.keys_chunks))
    return columns


def fits_row(encoded: EncodedFindings) -> bool:
    """Whether the document and keys fit the row's binary columns (else: a blob)."""
    keys = len(_chunks(encoded.keys))
    return (0 if keys > MAX_KEYS_CHUNKS else keys) + len(_chunks(encoded.document)) <= MAX_CHUNKS


def _is_findings_column(name: str) -> bool:
    return name.startswith(("findings_doc_", "findings_keys_")) and name[-1].isdigit()


def assessment_columns(assessment: Assessment, *, counts: FindingCounts, generation: str
                       ) -> dict[str, Any]:
    """The summary columns an assessment sets on the image row (besides its findings)."""
    columns: dict[str, Any] = counts_to_entity(counts)
    columns.update(
        status=assessment.status.value, reason=bounded_text(assessment.reason),
        analysis_status=(assessment.analysis_status or assessment.status).value,
        assessed_at=utc(assessment.assessed_at), analyzer_version=assessment.analyzer_version,
        index_version=assessment.index_version,
        matcher_version=assessment.matcher_version, last_scan_id=assessment.scan_id,
        current_generation=generation, match_keys=assessment.match_keys,
        platform_details=platform_details_to_json(tuple(
            PlatformDetail(platform=result.platform, manifest_digest=result.manifest_digest,
                           os=result.os)
            for result in assessment.results)),
    )
    platforms = [result.platform for result in assessment.results if result.platform]
    if platforms:
        columns["platforms"] = json.dumps(platforms)
    return columns


class FindingTable:
    """Findings of images, kept with their image rows (see the module doc)."""

    def __init__(self, images: ImageTable, blobs: BlobStore) -> None:
        self.images = images
        self.blobs = blobs

    # ------------------------------------------------------------ writing

    @staticmethod
    def blob_name(registry: str, repository: str, digest: str, generation: str) -> str:
        return f"{encode_key(registry)}/{encode_key(repository)}/{encode_key(digest)}/{generation}"

    def save(self, registry: str, repository: str, digest: str, assessment: Assessment,
             encoded: EncodedFindings | None = None) -> SaveResult:
        """Replace the image's assessment and findings in one conditional row write.

        An assessment older than the one stored (``assessed_at``) does not replace it. Equal
        findings keep their generation (and are not rewritten).
        """
        encoded = encoded or encode_findings(digest, assessment.results)
        generation = new_generation()
        blob = "" if fits_row(encoded) else self.blob_name(registry, repository, digest,
                                                            generation)
        if blob:
            self.blobs.put(BlobKind.FINDINGS, blob, encoded.document)
        outcome: dict[str, Any] = {}

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            outcome.clear()
            row = row or new_image_row(registry, repository, digest)
            previous = stored_findings_from_entity(row)
            outcome["previous"] = as_str(row.get("current_generation"))
            outcome["previous_blob"] = previous.blob
            stored_at = row.get("assessed_at")
            if isinstance(stored_at, datetime) and utc(stored_at) > utc(assessment.assessed_at):
                return None
            unchanged = (outcome["previous"] and previous.blob == ""
                         and as_str(row.get("findings_fingerprint")) == encoded.fingerprint
                         and row.get("findings_format") == FORMAT)
            kept = outcome["previous"] if unchanged else generation
            row.update(assessment_columns(assessment, counts=encoded.counts, generation=kept))
            if not assessment.match_keys:
                row.pop("match_keys", None)
            if not unchanged:
                for name in [name for name in row if _is_findings_column(name)]:
                    del row[name]
                row.update(findings_columns(encoded, blob=blob))
            if assessment.trigger is not None and not row.get("first_scan_trigger"):
                row["first_scan_trigger"] = assessment.trigger.value
            row["scan_state"] = ""  # the scan that was queued or running has its answer
            outcome["applied"] = True
            outcome["blob"] = blob if not unchanged else previous.blob
            return row

        self.images.modify(registry, repository, digest, change,
                           f"publishing findings of {digest}")
        if not outcome.get("applied"):
            if blob:
                self.blobs.delete(BlobKind.FINDINGS, blob)
            log.info("image %s: assessment of %s superseded by a newer one", digest,
                     assessment.assessed_at.isoformat())
            return SaveResult(applied=False)
        if blob or outcome["previous_blob"]:
            self._collect(registry, repository, digest, keep=outcome["blob"],
                          old=outcome["previous_blob"])
        return SaveResult(applied=True)

    def rescan_changes(self, image: ImageRecord, assessment: Assessment,
                       encoded: EncodedFindings) -> dict[str, Any] | None:
        """The merge that stores ``assessment`` on ``image``'s row (read with
        ``RESCAN_COLUMNS``), for a batched ``ImageTable.merge_rows``; None when the old or
        the new document lives in a blob (store it with ``save``)."""
        if image.stored_findings.blob or not fits_row(encoded):
            return None
        changes = assessment_columns(assessment, counts=encoded.counts,
                                     generation=new_generation())
        changes.update(findings_columns(encoded, previous=image.stored_findings))
        return changes

    def _collect(self, registry: str, repository: str, digest: str, *, keep: str,
                 old: str) -> None:
        """Delete the image's document blobs but ``keep``: ``old`` at once, others once
        stale (left by a writer that died before its row write)."""
        cutoff = datetime.now().astimezone() - STALE_GENERATION
        prefix = self.blob_name(registry, repository, digest, "")
        for name in self.blobs.names(BlobKind.FINDINGS, prefix):
            made = generation_time(name[len(prefix):])
            if name != keep and (name == old or (made is not None and made < cutoff)):
                self.blobs.delete(BlobKind.FINDINGS, name)

    # ------------------------------------------------------------ reading

    def _document(self, entity: Mapping[str, Any], stored: StoredFindings) -> bytes:
        if stored.blob:
            return self.blobs.get(BlobKind.FINDINGS, stored.blob)
        return b"".join(as_bytes(entity.get(DOCUMENT_COLUMN.format(n)))
                        for n in range(stored.document_chunks))

    def _read(self, registry: str, repository: str, digest: str
              ) -> tuple[ImageRecord, tuple[PlatformFindings, ...]]:
        for _attempt in range(MAX_READ_ATTEMPTS):
            entity = self.images.entity(registry, repository, digest)
            if entity is None:
                raise NotFound(f"no image {digest} in {registry}/{repository}")
            image = image_from_entity(entity)
            stored = image.stored_findings
            if not image.current_generation:
                return image, ()
            if entity.get("findings_format") != FORMAT:
                raise StoreError(f"findings of {digest} are in an unknown stored format")
            try:
                data = self._document(entity, stored)
            except NotFound:
                continue  # a newer save deleted the blob after moving the row on: read again
            return image, decode_document(data, image.platform_details,
                                          f"findings document of {digest}")
        raise TransientStoreError(f"findings of {digest} kept changing while being read")

    def current(self, registry: str, repository: str,
                digest: str) -> tuple[PlatformFindings, ...]:
        """The image's findings by platform, from one complete assessment (NotFound if the
        image is unknown). Platforms come in the assessment's order (platforms without
        findings included); findings within a platform by id, then package."""
        return self._read(registry, repository, digest)[1]

    def previous_summary(self, image: ImageRecord) -> AssessmentSummary | None:
        """The notification summary of ``image``'s stored assessment (row read with
        ``RESCAN_COLUMNS``); None when never assessed."""
        if image.status is None:
            return None
        stored = image.stored_findings
        if stored.total == 0:
            return AssessmentSummary(status=image.status, active_finding_keys=frozenset())
        if stored.keys_external or not stored.keys:
            findings = [finding for result in self.current(image.registry, image.repository,
                                                           image.digest)
                        for finding in result.findings]
            return AssessmentSummary(status=image.status, active_finding_keys=frozenset(
                finding_key(finding) for finding in findings if not finding.disabled_by))
        return summary_from_key_data(image.status, stored.keys,
                                     f"findings keys of {image.digest}")

    def with_image(self, registry: str, repository: str, digest: str
                   ) -> tuple[ImageRecord, tuple[PlatformFindings, ...]]:
        """The image's row and its findings by platform, from one read of the row (as
        ``current``)."""
        return self._read(registry, repository, digest)

    def keys_of(self, image: ImageRecord) -> tuple[_Key, ...]:
        """The query keys of ``image``'s findings: from its row when read with the key columns
        (``KEYS_COLUMNS``), else (keys that did not fit the row, or a read without them) from
        the findings document."""
        stored = image.stored_findings
        if stored.total == 0:
            return ()
        if stored.keys_external or not stored.keys:
            return tuple(_key_from_entry(_keys_entry(index, finding)) for index, result
                         in enumerate(self.current(image.registry, image.repository,
                                                   image.digest))
                         for finding in result.findings)
        return decode_keys(stored.keys, f"findings keys of {image.digest}")

    def query(self, filters: FindingFilter = FindingFilter(), page_size: int = 100,
              token: str | None = None) -> Page[FindingHit]:
        """Findings across images matching ``filters``, by registry, digest, platform, id.

        The token holds the service page of image rows, how many of its rows are done and how
        many hits of the next row were returned. A page may hold fewer than ``page_size`` hits
        while more follow (at most ``MAX_QUERY_SERVICE_PAGES`` pages of image rows are read
        per call): follow ``next_token`` until it is None.
        """
        check_page_size(page_size)
        service_token, skip, part = decode_token_part(token) if token else (None, 0, 0)
        query_filter, parameters = _image_prefilter(filters)
        items: list[FindingHit] = []
        with storage_errors("querying findings"):
            pages: Any = self.images.table.query_entities(
                query_filter, parameters=parameters, results_per_page=QUERY_SERVICE_PAGE,
                select=list(QUERY_COLUMNS)).by_page(continuation_token=cast(Any, service_token))
            page_start = service_token
            for service_pages, page in enumerate(pages, start=1):
                entities = list(page)
                next_service = pages.continuation_token
                for index in range(skip, len(entities)):
                    hits = list(self._hits(entities[index], filters))
                    taken = hits[part:part + page_size - len(items)]
                    items.extend(taken)
                    part += len(taken)
                    if len(items) == page_size:
                        if part < len(hits):
                            return Page(items=tuple(items),
                                        next_token=encode_token(page_start, index, part))
                        if index + 1 < len(entities):
                            return Page(items=tuple(items),
                                        next_token=encode_token(page_start, index + 1))
                        return Page(items=tuple(items), next_token=(
                            encode_token(next_service, 0) if next_service else None))
                    part = 0
                if not next_service:
                    break
                page_start, skip = next_service, 0
                if service_pages >= MAX_QUERY_SERVICE_PAGES:
                    return Page(items=tuple(items), next_token=encode_token(next_service, 0))
        return Page(items=tuple(items), next_token=None)

    def _hits(self, entity: Mapping[str, Any], filters: FindingFilter) -> Iterator[FindingHit]:
        listed = stored_findings_from_entity(entity)
        if listed.total == 0:
            return
        digest = as_str(entity.get("digest"))
        if not listed.keys_external and not any(
                _key_matches(key, filters)
                for key in decode_keys(listed.keys, f"findings keys of {digest}")):
            return
        image, results = self._read(as_str(entity.get("registry")),
                                    as_str(entity.get("repository")), digest)
        if image.deleted and not filters.include_deleted_images:
            return
        for result in results:
            for finding in result.findings:
                if _key_matches(_key_from_entry(_keys_entry(0, finding)), filters):
                    yield FindingHit(registry=image.registry, repository=image.repository,
                                     digest=image.digest, platform=result.platform,
                                     manifest_digest=result.manifest_digest, finding=finding)


def _image_prefilter(filters: FindingFilter) -> tuple[str, dict[str, Any]]:
    """What the service can narrow on: the image rows that may hold a hit."""
    image_filter, parameters = image_query(ImageFilter(
        registry=filters.registry, repository=filters.repository,
        include_deleted=filters.include_deleted_images))
    clauses = [clause for clause in (image_filter, "findings_total gt 0") if clause]
    if filters.severity is not None:
        kinds = ("active", "disabled") if filters.include_disabled else ("active",)
        # The SDK substitutes ``@name`` only as a space-separated word; these have none.
        clauses.append("( " + " or ".join(
            f"{count_column(kind, severity)} gt 0" for kind in kinds
            for severity in Severity if severity >= filters.severity) + " )")
    return " and ".join(clauses), parameters
