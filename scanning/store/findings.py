"""The findings table: an image's sub-assessments, replaced atomically for readers.

PartitionKey ``join_key(registry, digest)``; RowKey ``<generation>|<platform>|<finding id>|<hash
of package type, name, version, path>``: one row per finding per platform of one assessment
generation.

Replacing an image's findings cannot be one transaction (a batch holds at most 100 entities),
so a new assessment is written under a new *generation* id and published by moving a pointer:

1. ``write_generation``: write every row under a fresh generation id (batches of 100, one
   partition). Readers do not see them: nothing points there yet.
2. ``flip``: one ETag-conditional update of the image row sets ``current_generation`` (with
   status, counts and versions). This is the commit point. An assessment older than the one
   already stored (``assessed_at``) does not replace it.
3. ``delete_generation``: delete the previous generation's rows.

Readers (``current``) read the pointer, read that generation's rows, then read the pointer
again; if it moved meanwhile (a step 3 may have removed rows under them) they read again. So a
reader sees either the old complete set or the new complete set, never a mix or nothing.
Generations left behind by a writer that died between 1 and 2 are invisible and are removed by
the next save of that image once older than ``STALE_GENERATION``.

An unchanged result (same rows; the weekly rescan's common case) is detected by a fingerprint
on the image row and only the image row is updated.

Cross-image queries (``query``) are a filtered scan of this table: the service filters on
columns (finding id and its first ``ALIAS_COLUMNS`` aliases, package and source package,
severity rank, fix status, registry, repository) and the rows of non-current generations are
dropped client-side by looking up each image's pointer once per call. Table Storage has no
secondary indexes; a CVE-keyed index table would make "which images have CVE-X" a partition
read, at the cost of a write per distinct CVE per assessment: worth adding if the scan becomes
too slow (it reads every finding of every image whose columns match).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TransactionOperation

from scanning.errors import StoreError, TransientStoreError
from scanning.model import (
    AssessmentStatus,
    CvssScore,
    Finding,
    FixStatus,
    MatchDetail,
    OSInfo,
    PackageType,
    ScanTrigger,
    Severity,
)
from scanning.rules import FindingCounts, count_findings
from scanning.store.entities import (
    as_str,
    bounded_json_list,
    bounded_text,
    json_list,
    storage_errors,
    submit_batches,
    utc,
)
from scanning.store.images import (
    ImageTable,
    PlatformDetail,
    counts_to_entity,
    image_from_entity,
    new_image_row,
    platform_details_to_json,
)
from scanning.store.keys import SEPARATOR, encode_key, join_key
from scanning.store.paging import Page, query_page

log = logging.getLogger(__name__)

ALIAS_COLUMNS = 8
STALE_GENERATION = timedelta(hours=24)
MAX_READ_ATTEMPTS = 5
_MAX_ID_IN_KEY = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformFindings:
    """The findings of one platform of an image (``platform`` like ``linux/amd64``)."""

    platform: str
    findings: tuple[Finding, ...]
    manifest_digest: str = ""
    os: OSInfo | None = None


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
    scan_id: str = ""
    trigger: ScanTrigger | None = None
    # ``images.encode_match_keys`` of the assessed inventories; b"" when unknown.
    match_keys: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlipResult:
    applied: bool  # False: a newer assessment was already stored, or the pointer moved
    previous_generation: str = ""


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

    ``vulnerability_id`` matches the finding id or one of its first ``ALIAS_COLUMNS`` aliases
    (exact, case-sensitive: ids are stored as the advisory writes them). ``package`` matches
    the package or the source package. ``severity`` keeps findings at or above it.
    """

    vulnerability_id: str = ""
    package: str = ""
    severity: Severity | None = None
    fix_status: FixStatus | None = None
    registry: str = ""
    repository: str = ""
    include_disabled: bool = True
    include_deleted_images: bool = False


def new_generation() -> str:
    """``g`` + microseconds since the epoch (17 digits) + 8 random hex digits."""
    return f"g{time.time_ns() // 1000:017d}{secrets.token_hex(4)}"


def generation_time(generation: str) -> datetime | None:
    try:
        micros = int(generation[1:18])
    except ValueError:
        return None
    return datetime.fromtimestamp(micros / 1_000_000).astimezone()


def finding_partition(registry: str, digest: str) -> str:
    return join_key(registry, digest)


def _row_suffix(platform: str, finding: Finding) -> str:
    identity = "\n".join((finding.package_type.value, finding.package, finding.installed_version,
                          finding.path, finding.purl))
    package_hash = hashlib.sha256(identity.encode()).hexdigest()[:16]
    finding_id = encode_key(finding.id)
    if len(finding_id) > _MAX_ID_IN_KEY:
        finding_id = "h" + hashlib.sha256(finding.id.encode()).hexdigest()[:32]
    return f"{encode_key(platform)}{SEPARATOR}{finding_id}{SEPARATOR}{package_hash}"


def finding_to_columns(finding: Finding) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "vuln_id": finding.id,
        "aliases": bounded_json_list(finding.aliases),
        "package": finding.package,
        "installed_version": finding.installed_version,
        "package_type": finding.package_type.value,
        "purl": bounded_text(finding.purl),
        "source_package": finding.source_package,
        "fixed_version": finding.fixed_version,
        "fix_status": finding.fix_status.value,
        "severity": finding.severity.value,
        "severity_rank": finding.severity.rank,
        "vendor_severity": finding.vendor_severity,
        "cvss": bounded_json_list(
            {"version": score.version, "vector": score.vector, "base_score": score.base_score,
             "severity": score.severity.value}
            for score in finding.cvss
        ),
        "remediation": bounded_text(finding.remediation),
        "summary": bounded_text(finding.summary),
        "description": bounded_text(finding.description),
        "published": finding.published,
        "modified": finding.modified,
        "references": bounded_json_list(finding.references),
        "layer_digest": finding.layer_digest,
        "layer_instruction": bounded_text(finding.layer_instruction),
        "path": bounded_text(finding.path),
        "match": json.dumps({
            "ecosystem": finding.match.ecosystem, "searched_name": finding.match.searched_name,
            "searched_version": finding.match.searched_version, "range": finding.match.range,
        }),
        "disabled_by": finding.disabled_by,
        "extra": json.dumps(finding.extra, sort_keys=True),
    }
    if len(columns["extra"]) > 30_000:
        log.warning("finding %s: extra data too large to store, dropped", finding.id)
        columns["extra"] = "{}"
    for index in range(ALIAS_COLUMNS):
        columns[f"alias_{index}"] = finding.aliases[index] if index < len(finding.aliases) else ""
    return columns


def finding_from_entity(entity: Mapping[str, Any]) -> Finding:
    try:
        match = json.loads(as_str(entity.get("match")) or "{}")
        extra = json.loads(as_str(entity.get("extra")) or "{}")
        return Finding(
            id=as_str(entity.get("vuln_id")),
            aliases=tuple(json_list(entity.get("aliases"))),
            package=as_str(entity.get("package")),
            installed_version=as_str(entity.get("installed_version")),
            package_type=PackageType(as_str(entity.get("package_type"))),
            purl=as_str(entity.get("purl")),
            source_package=as_str(entity.get("source_package")),
            fixed_version=as_str(entity.get("fixed_version")),
            fix_status=FixStatus(as_str(entity.get("fix_status"))),
            severity=Severity(as_str(entity.get("severity"))),
            vendor_severity=as_str(entity.get("vendor_severity")),
            cvss=tuple(
                CvssScore(version=item["version"], vector=item["vector"],
                          base_score=float(item["base_score"]),
                          severity=Severity(item["severity"]))
                for item in json_list(entity.get("cvss"))
            ),
            remediation=as_str(entity.get("remediation")),
            summary=as_str(entity.get("summary")),
            description=as_str(entity.get("description")),
            published=as_str(entity.get("published")),
            modified=as_str(entity.get("modified")),
            references=tuple(json_list(entity.get("references"))),
            layer_digest=as_str(entity.get("layer_digest")),
            layer_instruction=as_str(entity.get("layer_instruction")),
            path=as_str(entity.get("path")),
            match=MatchDetail(
                ecosystem=match.get("ecosystem", ""),
                searched_name=match.get("searched_name", ""),
                searched_version=match.get("searched_version", ""),
                range=match.get("range", ""),
            ),
            disabled_by=as_str(entity.get("disabled_by")),
            extra=extra,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StoreError(f"finding row {entity.get('RowKey')!r} is malformed: {error}") from error


class FindingTable:
    """Findings of images, published through the image row's generation pointer."""

    def __init__(self, findings: TableClient, images: ImageTable) -> None:
        self.table = findings
        self.images = images

    # ------------------------------------------------------------ writing, step by step

    def _rows(self, registry: str, repository: str, digest: str,
              results: Iterable[PlatformFindings]) -> dict[str, dict[str, Any]]:
        """Row suffix -> columns; a finding repeated on one platform is stored once."""
        rows: dict[str, dict[str, Any]] = {}
        for result in results:
            for finding in result.findings:
                suffix = _row_suffix(result.platform, finding)
                if suffix in rows:
                    log.warning("image %s: duplicate finding %s for %s on %s dropped",
                                digest, finding.id, finding.package, result.platform)
                    continue
                columns = finding_to_columns(finding)
                columns.update(registry=registry, repository=repository, digest=digest,
                               platform=result.platform, manifest_digest=result.manifest_digest)
                rows[suffix] = columns
        return rows

    def fingerprint(self, registry: str, digest: str, repository: str,
                    results: Iterable[PlatformFindings]) -> str:
        """The ``findings_fingerprint`` ``save`` would store for ``results``: equal to the
        image row's when the rows are the ones stored."""
        return self._fingerprint(self._rows(registry, repository, digest, results))

    @staticmethod
    def _fingerprint(rows: Mapping[str, Mapping[str, Any]]) -> str:
        canonical = json.dumps(sorted(rows.items()), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def write_generation(self, registry: str, digest: str, repository: str,
                         results: Iterable[PlatformFindings], generation: str = "") -> str:
        """Step 1: write the rows under a new generation (returned); readers do not see it."""
        generation = generation or new_generation()
        partition_key = finding_partition(registry, digest)
        rows = self._rows(registry, repository, digest, results)
        operations = [
            (TransactionOperation.UPSERT, {
                "PartitionKey": partition_key, "RowKey": f"{generation}{SEPARATOR}{suffix}",
                "generation": generation, **columns,
            })
            for suffix, columns in rows.items()
        ]
        submit_batches(self.table, operations, f"writing findings of {digest}")
        return generation

    def flip(self, registry: str, digest: str, generation: str, assessment: Assessment, *,
             repository: str = "", fingerprint: str = "", expected_generation: str | None = None,
             counts: FindingCounts | None = None) -> FlipResult:
        """Step 2: point the image row at ``generation`` with the assessment's summary.

        Not applied when the stored assessment is newer than this one, or when
        ``expected_generation`` is given and the pointer is no longer there.
        """
        assessed_at = utc(assessment.assessed_at)
        counts = counts or count_findings(
            finding for result in assessment.results for finding in result.findings)
        outcome: dict[str, Any] = {}

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            outcome.clear()
            row = row or new_image_row(registry, repository, digest)
            previous = as_str(row.get("current_generation"))
            outcome["previous"] = previous
            if expected_generation is not None and previous != expected_generation:
                return None
            stored_at = row.get("assessed_at")
            if isinstance(stored_at, datetime) and utc(stored_at) > assessed_at:
                return None
            row.update(counts_to_entity(counts))
            row.update(
                status=assessment.status.value,
                reason=bounded_text(assessment.reason),
                assessed_at=assessed_at,
                analyzer_version=assessment.analyzer_version,
                index_version=assessment.index_version,
                last_scan_id=assessment.scan_id,
                current_generation=generation,
                findings_fingerprint=fingerprint,
            )
            if assessment.match_keys:
                row["match_keys"] = assessment.match_keys
            else:
                row.pop("match_keys", None)
            if repository and not row.get("repository"):
                row["repository"] = repository
            row["analysis_status"] = (assessment.analysis_status or assessment.status).value
            row["platform_details"] = platform_details_to_json(tuple(
                PlatformDetail(platform=result.platform, manifest_digest=result.manifest_digest,
                               os=result.os)
                for result in assessment.results))
            platforms = [result.platform for result in assessment.results if result.platform]
            if platforms:
                row["platforms"] = json.dumps(platforms)
            if assessment.trigger is not None and not row.get("first_scan_trigger"):
                row["first_scan_trigger"] = assessment.trigger.value
            outcome["applied"] = True
            return row

        self.images.modify(registry, digest, change, f"publishing findings of {digest}")
        return FlipResult(applied=bool(outcome.get("applied")),
                          previous_generation=str(outcome.get("previous", "")))

    def delete_generation(self, registry: str, digest: str, generation: str) -> int:
        """Step 3: delete one generation's rows; returns how many."""
        return self._delete_where(registry, digest, lambda found: found == generation)

    def _delete_where(self, registry: str, digest: str, doomed: Any) -> int:
        partition_key = finding_partition(registry, digest)
        with storage_errors(f"listing findings of {digest}"):
            keys = [entity["RowKey"] for entity in self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": partition_key}, select=["RowKey"])]
        operations = [
            (TransactionOperation.DELETE, {"PartitionKey": partition_key, "RowKey": row_key})
            for row_key in keys if doomed(row_key.split(SEPARATOR, 1)[0])
        ]
        return submit_batches(self.table, operations, f"deleting findings of {digest}")

    # ------------------------------------------------------------ writing, all steps

    def save(self, registry: str, digest: str, assessment: Assessment,
             repository: str = "") -> FlipResult:
        """Replace the image's findings with ``assessment`` (steps 1-3, see module doc)."""
        entity = self.images.entity(registry, digest)
        image = image_from_entity(entity) if entity is not None else None
        repository = repository or (image.repository if image else "")
        rows = self._rows(registry, repository, digest, assessment.results)
        fingerprint = self._fingerprint(rows)
        counts = count_findings(
            finding for result in assessment.results for finding in result.findings)
        if (entity is not None and image is not None and image.current_generation
                and as_str(entity.get("findings_fingerprint")) == fingerprint):
            # Same rows as stored: only the image row changes (the weekly rescan's usual case).
            result = self.flip(registry, digest, image.current_generation, assessment,
                               repository=repository, fingerprint=fingerprint,
                               expected_generation=image.current_generation, counts=counts)
            if result.applied or result.previous_generation == image.current_generation:
                return result  # done, or a newer assessment is already stored
            # The pointer moved under us (a concurrent save): write our own generation.
        generation = self.write_generation(registry, digest, repository, assessment.results)
        result = self.flip(registry, digest, generation, assessment, repository=repository,
                           fingerprint=fingerprint, counts=counts)
        if not result.applied:
            self.delete_generation(registry, digest, generation)
            log.info("image %s: assessment of %s superseded by a newer one", digest,
                     assessment.assessed_at.isoformat())
            return result
        self._collect(registry, digest, keep=generation, old=result.previous_generation)
        return result

    def _collect(self, registry: str, digest: str, *, keep: str, old: str) -> None:
        cutoff = datetime.now().astimezone() - STALE_GENERATION

        def doomed(found: str) -> bool:
            if found == keep:
                return False
            if found == old:
                return True
            made = generation_time(found)
            return made is not None and made < cutoff

        self._delete_where(registry, digest, doomed)

    # ------------------------------------------------------------ reading

    def generation_rows(self, registry: str, digest: str, generation: str) -> list[Any]:
        partition_key = finding_partition(registry, digest)
        with storage_errors(f"reading findings of {digest}"):
            return list(self.table.query_entities(
                "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
                parameters={"pk": partition_key, "low": generation + SEPARATOR,
                            "high": generation + chr(ord(SEPARATOR) + 1)},
            ))

    def current(self, registry: str, digest: str) -> tuple[PlatformFindings, ...]:
        """The image's findings by platform, from one complete generation (NotFound if none).

        Platforms come in the assessment's order (platforms without findings included);
        findings within a platform in row-key order, i.e. by finding id.
        """
        for _attempt in range(MAX_READ_ATTEMPTS):
            image = self.images.get(registry, digest)
            if not image.current_generation:
                return ()
            rows = self.generation_rows(registry, digest, image.current_generation)
            again = self.images.get(registry, digest)
            if again.current_generation == image.current_generation:
                return _group(rows, again.platform_details)
        raise TransientStoreError(f"findings of {digest} kept changing while being read")

    def query(self, filters: FindingFilter = FindingFilter(), page_size: int = 100,
              token: str | None = None) -> Page[FindingHit]:
        """Findings across images matching ``filters`` (see the module doc on cost)."""
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if filters.vulnerability_id:
            parameters["vid"] = filters.vulnerability_id
            columns = ["vuln_id", *(f"alias_{index}" for index in range(ALIAS_COLUMNS))]
            # The SDK substitutes ``@name`` only as a space-separated word: keep spaces
            # around the parentheses.
            clauses.append("( " + " or ".join(f"{column} eq @vid" for column in columns) + " )")
        if filters.package:
            parameters["package"] = filters.package
            clauses.append("( package eq @package or source_package eq @package )")
        if filters.severity is not None:
            parameters["rank"] = filters.severity.rank
            clauses.append("severity_rank ge @rank")
        if filters.fix_status is not None:
            parameters["fix"] = filters.fix_status.value
            clauses.append("fix_status eq @fix")
        if filters.registry:
            parameters["registry"] = filters.registry
            clauses.append("registry eq @registry")
        if filters.repository:
            parameters["repository"] = filters.repository
            clauses.append("repository eq @repository")
        if not filters.include_disabled:
            clauses.append("disabled_by eq ''")
        pointers: dict[str, str | None] = {}

        def current_row(entity: Mapping[str, Any]) -> bool:
            partition_key = entity["PartitionKey"]
            if partition_key not in pointers:
                image = self.images.find(as_str(entity.get("registry")),
                                         as_str(entity.get("digest")))
                visible = image is not None and (filters.include_deleted_images
                                                 or not image.deleted)
                pointers[partition_key] = image.current_generation if visible and image else None
            return pointers[partition_key] == entity.get("generation")

        return query_page(
            self.table, query_filter=" and ".join(clauses), parameters=parameters,
            page_size=page_size, token=token, convert=_hit, predicate=current_row,
            operation="querying findings",
        )


def _hit(entity: Mapping[str, Any]) -> FindingHit:
    return FindingHit(
        registry=as_str(entity.get("registry")), repository=as_str(entity.get("repository")),
        digest=as_str(entity.get("digest")), platform=as_str(entity.get("platform")),
        manifest_digest=as_str(entity.get("manifest_digest")),
        finding=finding_from_entity(entity),
    )


def _group(rows: Iterable[Mapping[str, Any]],
           details: tuple[PlatformDetail, ...]) -> tuple[PlatformFindings, ...]:
    """Findings by platform, in the assessment's platform order; platforms without findings
    are included (with their OS), so re-applying rules or rendering keeps every platform."""
    grouped: dict[tuple[str, str], list[Finding]] = {
        (detail.platform, detail.manifest_digest): [] for detail in details}
    for row in rows:
        key = (as_str(row.get("platform")), as_str(row.get("manifest_digest")))
        grouped.setdefault(key, []).append(finding_from_entity(row))
    os_by_key = {(detail.platform, detail.manifest_digest): detail.os for detail in details}
    return tuple(
        PlatformFindings(platform=platform, manifest_digest=manifest, findings=tuple(findings),
                         os=os_by_key.get((platform, manifest)))
        for (platform, manifest), findings in grouped.items()
    )

