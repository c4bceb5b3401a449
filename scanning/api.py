"""The HTTP results API, without Azure Functions: parsed request in, ``ApiResponse`` out.

``scanning.functions.api`` turns each ``func.HttpRequest`` into the arguments of one handler
here (query parameters as a mapping of strings, route values, the raw body and its content
type) and the returned ``ApiResponse`` into a ``func.HttpResponse``. Every route is documented
in ``openapi.yaml`` and the README (section "HTTP API").

Errors are ``{"error": {"code": ..., "message": ...}}`` with 400 (bad input), 404 (unknown
image, rule, scan), 409 (a digest stored in several registries and no ``registry`` given),
503 (storage busy; retry) or 500; ``respond`` maps the ``ScanError`` tree onto them so no input
reaches the caller as a stack trace.

Disable rules take effect at once, two ways: ``service.rules.reapply_rules`` re-decides the
stored verdicts when a rule is created or deleted, so ``GET images``, which
filters on the stored status and counts, is right as soon as ``POST rules`` returns; and the
single-image and findings views decide the verdict again with the current rules when they read
(``service.rules.current_verdict``), so an expired
rule stops hiding findings without waiting for the image's next assessment.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scanning.assessment import reassess
from scanning.defender import fix_statuses
from scanning.errors import BadRequest, Conflict, NotFound, RegistryError, ScanError
from scanning.events import RegistryEvent
from scanning.httpjson import error_body, parse_json_body
from scanning.model import (
    AssessmentStatus,
    Finding,
    FindingCounts,
    FixStatus,
    OSInfo,
    PlatformFindings,
    ScanState,
    Severity,
)
from scanning.registry import ImageReference, ReferenceKind, open_source, parse_reference
from scanning.rules import (
    DisableRule,
    rule_from_json,
    rule_to_json,
    rules_from_openvex,
)
from scanning.service.fanout import rescan_progress
from scanning.service.payloads import MANUAL_SCAN_USER_AGENT
from scanning.service.rules import (
    create_rule,
    current_verdict,
    get_rule,
    image_ref,
    load_rules,
    put_rule,
    reapply_rules,
)
from scanning.store import (
    FindingFilter,
    FindingHit,
    ImageFilter,
    ImageRecord,
    ScanFilter,
    ScanRecord,
    Store,
)
from scanning.store.billing import BillingRecord, check_month, price_from_settings
from scanning.subassessments import SubAssessmentImage, to_sub_assessment

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_PARAMETER_LENGTH = 512
MAX_TOKEN_LENGTH = 4096
MAX_BODY_BYTES = 4 * 1024 * 1024  # a large OpenVEX document; rules and scan requests are tiny
OPENVEX_MEDIA_TYPE = "application/vnd.openvex+json"
# The user agent of scans started by ``POST scans``: how the orchestration tells them apart.
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_RULE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Scan history ids (``scanning.store.scans``); anything else is an orchestration instance id.
_SCAN_ID = re.compile(r"[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}")
# Durable Functions instance ids may not contain / \ # ? or control characters.
# The rescan orchestration's ids (scanning.functions.rescans): also blob name parts.
_RESCAN_ID = re.compile(r"(rescan|reassess)-[A-Za-z0-9-]{1,200}")
_INSTANCE_ID = re.compile(r"[^/\\#?\x00-\x1f\x7f]{1,256}")
_SEVERITY_ORDER = tuple(sorted(Severity, reverse=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiResponse:
    """An HTTP answer: ``body`` is JSON-able, or None for an empty body (204)."""

    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- responses and errors


def error_response(error: BaseException) -> ApiResponse:
    """The response for an exception a handler raised."""
    if isinstance(error, BadRequest):
        return ApiResponse(status=400, body=error_body("BadRequest", str(error)))
    if isinstance(error, NotFound):
        return ApiResponse(status=404, body=error_body("NotFound", str(error)))
    if isinstance(error, Conflict):
        return ApiResponse(status=409, body=error_body("Ambiguous", str(error),
                                                       candidates=error.candidates))
    if isinstance(error, ScanError) and error.retryable:
        log.warning("request failed, retryable: %s", error)
        return ApiResponse(status=503, body=error_body("ServiceUnavailable", str(error)),
                           headers=(("Retry-After", "5"),))
    if isinstance(error, RegistryError):
        return ApiResponse(status=502, body=error_body("RegistryError", str(error)))
    log.error("request failed", exc_info=error)
    return ApiResponse(status=500, body=error_body("InternalError", "the request failed; "
                                                   "see the function app's logs"))


def respond(handler: Callable[[], ApiResponse]) -> ApiResponse:
    """Run ``handler``; any exception becomes an error response, never a crash."""
    try:
        return handler()
    except Exception as error:  # the API must answer something for every input
        return error_response(error)


# ---------------------------------------------------------------- parsing request parameters


def text_parameter(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"parameter {name!r} must be text")
    value = value.strip()
    if len(value) > MAX_PARAMETER_LENGTH:
        raise BadRequest(f"parameter {name!r} is longer than {MAX_PARAMETER_LENGTH} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise BadRequest(f"parameter {name!r} contains control characters")
    return value


def _choice(query: Mapping[str, str], name: str, parse: Callable[[str], Any],
            choices: Iterable[Any]) -> Any:
    text = text_parameter(query, name)
    if not text:
        return None
    try:
        return parse(text.lower())
    except ValueError:
        allowed = ", ".join(str(getattr(choice, "value", choice)) for choice in choices)
        raise BadRequest(f"parameter {name!r} must be one of {allowed}, got {text!r}") from None


def severity_parameter(query: Mapping[str, str], name: str = "severity") -> Severity | None:
    result: Severity | None = _choice(query, name, Severity, Severity)
    return result


def status_parameter(query: Mapping[str, str]) -> AssessmentStatus | ScanState | None:
    """An assessment status, or the status of an image not assessed yet (``queued``,
    ``scanning``)."""
    result: AssessmentStatus | ScanState | None = _choice(
        query, "status", _image_status, (*AssessmentStatus, *ScanState))
    return result


def _image_status(text: str) -> AssessmentStatus | ScanState:
    try:
        return AssessmentStatus(text)
    except ValueError:
        return ScanState(text)


def fix_status_parameter(query: Mapping[str, str]) -> frozenset[FixStatus] | None:
    """acr-scan's fix status, or Defender's name for the ones it covers; None: any."""
    text = text_parameter(query, "fixStatus")
    if not text:
        return None
    try:
        return fix_statuses(text)
    except ValueError:
        raise BadRequest("parameter 'fixStatus' must be one of "
                         + ", ".join(status.value for status in FixStatus)
                         + " or Defender's FixAvailable, NoFixAvailable, WontFix, Scheduled, "
                         f"Unknown, got {text!r}") from None


def bool_parameter(query: Mapping[str, str], name: str) -> bool:
    text = text_parameter(query, name).lower()
    if text in ("", "false", "0"):
        return False
    if text in ("true", "1"):
        return True
    raise BadRequest(f"parameter {name!r} must be true or false, got {text!r}")


def digest_parameter(value: str, name: str = "digest") -> str:
    if not isinstance(value, str) or not DIGEST.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise BadRequest(f"{name} must be sha256: and 64 lower-case hex digits, got {shown!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Paging:
    page_size: int = DEFAULT_PAGE_SIZE
    token: str | None = None


def paging_parameters(query: Mapping[str, str]) -> Paging:
    raw_size = text_parameter(query, "pageSize")
    page_size = DEFAULT_PAGE_SIZE
    if raw_size:
        if not raw_size.isascii() or not raw_size.isdigit() or len(raw_size) > 6:
            raise BadRequest(f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}, "
                             f"got {raw_size[:20]!r}")
        page_size = int(raw_size)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise BadRequest(f"pageSize must be from 1 to {MAX_PAGE_SIZE}, got {page_size}")
    token = query.get("continuationToken", "")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise BadRequest("continuationToken is malformed")
    return Paging(page_size=page_size, token=token.strip() or None)


def next_link(url: str, token: str | None) -> str | None:
    """``url`` with its ``continuationToken`` replaced by ``token`` (None: no next page)."""
    if token is None or not url:
        return None
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key not in ("continuationToken", "code")]
    query.append(("continuationToken", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def page_body(items: list[Any], token: str | None, url: str, **extra: Any) -> dict[str, Any]:
    return {**extra, "value": items, "continuationToken": token,
            "nextLink": next_link(url, token)}


def json_body(body: bytes, what: str) -> Any:
    """Parse a request body as JSON; BadRequest for anything else (``scanning.httpjson``)."""
    return parse_json_body(body, what, max_bytes=MAX_BODY_BYTES)


# ---------------------------------------------------------------- JSON shapes


def time_text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def counts_json(counts: FindingCounts) -> dict[str, Any]:
    return {
        "active": {severity.value: counts.active.get(severity, 0)
                   for severity in _SEVERITY_ORDER},
        "disabled": {severity.value: counts.disabled.get(severity, 0)
                     for severity in _SEVERITY_ORDER},
        "activeTotal": counts.active_total,
        "disabledTotal": counts.disabled_total,
    }


def image_json(image: ImageRecord, *, status: AssessmentStatus | None = None,
               counts: FindingCounts | None = None) -> dict[str, Any]:
    """An image as the API shows it. Its ``status`` is the assessment's, or before the first
    assessment the scan's (``queued``, ``scanning``): null only for an image no scan was
    started for. ``scanState`` says a scan is queued or running, also for an assessed image."""
    shown_status = status or image.status or image.scan_state
    return {
        "registry": image.registry,
        "repository": image.repository,
        "digest": image.digest,
        "tags": list(image.tags),
        "platforms": list(image.platforms),
        "mediaType": image.media_type,
        "sizeBytes": image.size_bytes,
        "status": shown_status.value if shown_status is not None else None,
        "scanState": image.scan_state.value if image.scan_state is not None else None,
        "reason": image.reason,
        "counts": counts_json(counts if counts is not None else image.counts),
        "firstPushed": time_text(image.first_pushed),
        "lastPushed": time_text(image.last_pushed),
        "lastPulled": time_text(image.last_pulled),
        "assessedAt": time_text(image.assessed_at),
        "analyzerVersion": image.analyzer_version,
        "indexVersion": image.index_version,
        "matcherVersion": image.matcher_version,
        "lastScanId": image.last_scan_id,
        "firstScanTrigger": (image.first_scan_trigger.value
                             if image.first_scan_trigger is not None else None),
        "deleted": image.deleted,
        "deletedAt": time_text(image.deleted_at),
    }


def os_json(os_info: OSInfo | None) -> dict[str, str] | None:
    if os_info is None:
        return None
    return {"id": os_info.id, "versionId": os_info.version_id, "codename": os_info.codename,
            "prettyName": os_info.pretty_name}


def scan_json(scan: ScanRecord) -> dict[str, Any]:
    return {
        "id": scan.id,
        "registry": scan.registry,
        "repository": scan.repository,
        "digest": scan.digest,
        "trigger": scan.trigger.value,
        "started": time_text(scan.started),
        "finished": time_text(scan.finished),
        "durationSeconds": scan.duration_seconds,
        "outcome": scan.outcome.value if scan.outcome is not None else None,
        "error": scan.error,
    }


def billing_json(record: BillingRecord) -> dict[str, Any]:
    return {
        "registry": record.registry,
        "repository": record.repository,
        # Every repository of the registry the digest was seen in; billed once for all.
        "repositories": list(record.repositories or (record.repository,)),
        "digest": record.digest,
        "trigger": record.trigger.value,
        "billedAt": time_text(record.billed_at),
        "unitPrice": str(record.unit_price),
        "currency": record.currency,
    }


def _finding_order(finding: Finding) -> tuple[int, str, str, str]:
    return (-finding.severity.rank, finding.id, finding.package, finding.installed_version)


# ---------------------------------------------------------------- rules, applied when reading


def platform_os(image: ImageRecord) -> dict[str, OSInfo]:
    """The OS the scan detected on each platform of ``image`` (platforms without one left out)."""
    return {detail.platform: detail.os for detail in image.platform_details
            if detail.os is not None}


# ---------------------------------------------------------------- images


def list_images(store: Store, query: Mapping[str, str], url: str = "") -> ApiResponse:
    paging = paging_parameters(query)
    status = status_parameter(query)
    filters = ImageFilter(
        registry=text_parameter(query, "registry"),
        repository=text_parameter(query, "repository"),
        status=status if isinstance(status, AssessmentStatus) else None,
        scan_state=status if isinstance(status, ScanState) else None,
        severity=severity_parameter(query),
        include_deleted=bool_parameter(query, "includeDeleted"),
    )
    page = store.images.list(filters, paging.page_size, paging.token)
    return ApiResponse(status=200, body=page_body(
        [image_json(image) for image in page.items], page.next_token, url))


def find_image(store: Store, digest: str, registry: str, repository: str) -> ImageRecord:
    """The one image ``digest`` names; NotFound, or Conflict when several registries or
    repositories have it (the 409 lists them: add ``registry`` / ``repository``)."""
    if registry and repository:
        candidates: tuple[ImageRecord, ...] = tuple(
            image for image in (store.images.find(registry, repository, digest),)
            if image is not None)
    elif registry:
        candidates = store.images.repositories_of(registry, digest)
    else:
        candidates = store.images.find_by_digest(digest)
    if repository:
        candidates = tuple(image for image in candidates if image.repository == repository)
    if not candidates:
        where = "".join(f" {label} {value}" for label, value in
                        (("in registry", registry), ("in repository", repository)) if value)
        raise NotFound(f"no image {digest}{where}")
    if len(candidates) > 1:
        registries = {image.registry for image in candidates}
        what, parameter = (("registries", "registry") if len(registries) > 1
                           else ("repositories", "repository"))
        raise Conflict(
            f"{digest} is stored in {len(candidates)} {what}; add a {parameter} parameter",
            [{"registry": image.registry, "repository": image.repository}
             for image in sorted(candidates, key=lambda image: (image.registry,
                                                                 image.repository))],
        )
    return candidates[0]


def sub_assessment_context(image: ImageRecord, platform: str, os_info: OSInfo | None,
                           result: PlatformFindings | None = None) -> SubAssessmentImage:
    partial = result is not None and (result.analysis is AssessmentStatus.PARTIAL
                                      or bool(result.warnings))
    return SubAssessmentImage(
        registry=image.registry, repository=image.repository, digest=image.digest,
        tags=image.tags, media_type=image.media_type,
        last_pushed=time_text(image.last_pushed) or "", os=os_info, platform=platform,
        time_generated=time_text(image.assessed_at) or "",
        partial_note=f"partial read: {result.reason}" if partial and result else "",
    )


def _platform_verdict(result: PlatformFindings | None) -> dict[str, Any]:
    """A platform's own status, reason and warnings (what was skipped or not assessed)."""
    if result is None:
        return {"status": None, "reason": "", "warnings": []}
    return {"status": result.status.value if result.status else None, "reason": result.reason,
            "warnings": list(result.warnings)}


def get_image(store: Store, digest: str, query: Mapping[str, str],
              now: datetime) -> ApiResponse:
    """One image's assessment with its sub-assessments, the current rules applied."""
    digest_parameter(digest)
    image = find_image(store, digest, text_parameter(query, "registry"),
                       text_parameter(query, "repository"))
    oses = platform_os(image)
    verdict = current_verdict(
        image, store.findings_of(image.registry, image.repository, image.digest),
        load_rules(store), now)
    results = verdict.platforms if verdict is not None else ()
    body = image_json(image, status=verdict.status if verdict is not None else None,
                      counts=verdict.counts if verdict is not None else None)
    platforms = list(dict.fromkeys([*image.platforms, *(result.platform for result in results),
                                    *oses]))
    manifests = {detail.platform: detail.manifest_digest for detail in image.platform_details}
    manifests.update((result.platform, result.manifest_digest) for result in results)
    decided = {result.platform: result for result in results}
    body["platformDetails"] = [
        {"platform": platform, "manifestDigest": manifests.get(platform, ""),
         "os": os_json(oses.get(platform)), **_platform_verdict(decided.get(platform))}
        for platform in platforms
    ]
    body["subAssessments"] = [
        to_sub_assessment(sub_assessment_context(
            image, result.platform, result.os or oses.get(result.platform), result), finding)
        for result in results
        for finding in sorted(result.findings, key=_finding_order)
    ]
    return ApiResponse(status=200, body=body)


# ---------------------------------------------------------------- findings


def query_findings(store: Store, query: Mapping[str, str], now: datetime,
                   url: str = "") -> ApiResponse:
    """Findings across images, each a sub-assessment with the current rules applied."""
    paging = paging_parameters(query)
    filters = FindingFilter(
        vulnerability_id=text_parameter(query, "cve"),
        package=text_parameter(query, "package"),
        severity=severity_parameter(query),
        fix_statuses=fix_status_parameter(query),
        registry=text_parameter(query, "registry"),
        repository=text_parameter(query, "repository"),
    )
    page = store.query_findings(filters, paging.page_size, paging.token)
    rules = load_rules(store)
    images: dict[tuple[str, str, str], ImageRecord] = {}
    items = []
    for hit in page.items:
        key = (hit.registry, hit.repository, hit.digest)
        if key not in images:
            images[key] = store.images.find(*key) or ImageRecord(
                registry=hit.registry, repository=hit.repository, digest=hit.digest)
        items.append(_hit_json(hit, images[key], platform_os(images[key]), rules, now))
    return ApiResponse(status=200, body=page_body(items, page.next_token, url))


def _hit_json(hit: FindingHit, image: ImageRecord, oses: Mapping[str, OSInfo],
              rules: tuple[DisableRule, ...], now: datetime) -> dict[str, Any]:
    result = PlatformFindings(platform=hit.platform, manifest_digest=hit.manifest_digest,
                              findings=(hit.finding,), os=oses.get(hit.platform))
    (finding,) = reassess((result,), image=image_ref(image), rules=rules, now=now).findings
    return to_sub_assessment(sub_assessment_context(image, hit.platform, oses.get(hit.platform)),
                             finding)


# ---------------------------------------------------------------- scans


def list_scans(store: Store, query: Mapping[str, str], url: str = "") -> ApiResponse:
    paging = paging_parameters(query)
    digest = text_parameter(query, "digest")
    if digest:
        digest_parameter(digest)
    filters = ScanFilter(registry=text_parameter(query, "registry"),
                         repository=text_parameter(query, "repository"), digest=digest)
    page = store.scans.list(filters, paging.page_size, paging.token)
    return ApiResponse(status=200, body=page_body(
        [scan_json(scan) for scan in page.items], page.next_token, url))


def is_scan_record_id(scan_id: str) -> bool:
    """Scan history ids (``20250301T120000000000Z-1a2b3c4d``) versus orchestration ids."""
    return bool(_SCAN_ID.fullmatch(scan_id))


def get_scan_record(store: Store, scan_id: str) -> ApiResponse:
    return ApiResponse(status=200, body=scan_json(store.scans.get(scan_id)))


def check_instance_id(instance_id: str) -> str:
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise BadRequest(f"not a scan id: {instance_id[:80]!r}")
    return instance_id


def get_rescan(store: Store, rescan_id: str) -> ApiResponse:
    """A rescan's progress: chunks done of the plan's, images re-assessed and failed."""
    if not _RESCAN_ID.fullmatch(rescan_id):
        raise BadRequest(f"not a rescan id: {rescan_id[:80]!r}")
    return ApiResponse(status=200, body=rescan_progress(store, rescan_id).to_json())


def orchestration_status_json(status: Any) -> dict[str, Any]:
    """A durable client's ``DurableOrchestrationStatus`` as the API returns it."""
    body: dict[str, Any] = status.to_json()
    return json.loads(json.dumps(body, default=str))


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualScanRequest:
    """What ``POST scans`` asks for: a registry image by tag or digest; ``force``: scan it
    again even when it was scanned already."""

    registry: str
    repository: str
    tag: str
    digest: str
    force: bool = False

    def event(self, digest: str, media_type: str, now: datetime) -> RegistryEvent:
        """The push event the ``scan_image`` orchestration takes as input."""
        return RegistryEvent(action="push", registry=self.registry, repository=self.repository,
                             digest=digest, tag=self.tag, media_type=media_type,
                             user_agent=MANUAL_SCAN_USER_AGENT,
                             time=time_text(now) or "")


def scan_request(body: bytes) -> ManualScanRequest:
    """Validate ``{"image": "REGISTRY/REPOSITORY[:TAG][@sha256:…]", "force": true}`` (``force``
    optional)."""
    data = json_body(body, '{"image": "<reference>"}')
    if not isinstance(data, dict) or "image" not in data or not set(data) <= {"image", "force"}:
        raise BadRequest('the body must be {"image": "<registry>/<repository>[:tag][@digest]"'
                         ', "force": <true or false, optional>}')
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest("force must be true or false")
    text = data["image"]
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("image must be a non-empty string")
    if len(text) > MAX_PARAMETER_LENGTH:
        raise BadRequest(f"image is longer than {MAX_PARAMETER_LENGTH} characters")
    if text.startswith(("oci:", "docker-archive:")):
        raise BadRequest("only registry images can be scanned over HTTP")
    try:
        reference = parse_reference(text)
    except ValueError as error:
        raise BadRequest(f"image is not a valid reference: {error}") from error
    if reference.kind is not ReferenceKind.REGISTRY:
        raise BadRequest("only registry images can be scanned over HTTP")
    if "/" not in text.split("@", 1)[0].strip():
        raise BadRequest("image must name its registry: <registry>/<repository>[:tag]"
                         "[@digest]")
    if reference.digest:
        digest_parameter(reference.digest, "the image digest")
    return ManualScanRequest(registry=reference.registry, repository=reference.repository,
                             tag=reference.tag, digest=reference.digest, force=force)


ManifestFetcher = Callable[[ManualScanRequest], tuple[str, str]]


def fetch_manifest_identity(request: ManualScanRequest) -> tuple[str, str]:
    """``(digest, media type)`` of the manifest or index the request names, from its registry.

    Credentials as the scan uses them: managed identity for ACR, anonymous elsewhere.
    """
    reference = ImageReference(kind=ReferenceKind.REGISTRY, registry=request.registry,
                               repository=request.repository, tag=request.tag,
                               digest=request.digest)
    source = open_source(reference)
    try:
        manifest = source.fetch_manifest(reference.ref)
    finally:
        source.close()
    return manifest.digest, manifest.media_type


def scan_event(request: ManualScanRequest, now: datetime,
               fetch: ManifestFetcher = fetch_manifest_identity) -> RegistryEvent:
    """The push event for ``request``, its tag resolved to the digest the registry serves.

    Scans are keyed by digest (one orchestration instance per registry + digest), so a tag is
    resolved here, before the scan starts; a missing image is a 404 now, not a failed scan.
    """
    digest, media_type = fetch(request)
    if request.digest and digest != request.digest:
        raise BadRequest(f"the registry served {digest} for {request.digest}")
    digest_parameter(digest, "the registry's digest")
    return request.event(digest, media_type, now)


# ---------------------------------------------------------------- rules


def _rule_page_token(offset: int) -> str:
    raw = json.dumps({"v": 1, "offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _rule_page_offset(token: str | None) -> int:
    if token is None:
        return 0
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise BadRequest("continuation token is malformed") from error
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise BadRequest("continuation token is malformed")
    offset = payload.get("offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise BadRequest("continuation token is malformed")
    return offset


def list_rules(store: Store, query: Mapping[str, str], now: datetime,
               url: str = "") -> ApiResponse:
    """Every rule in id order (expired ones too, marked), paged in memory: rules are few."""
    paging = paging_parameters(query)
    offset = _rule_page_offset(paging.token)
    rules = load_rules(store)
    window = rules[offset:offset + paging.page_size]
    end = offset + len(window)
    token = _rule_page_token(end) if end < len(rules) else None
    items = [{**rule_to_json(rule), "expired": rule.expired(now)} for rule in window]
    return ApiResponse(status=200, body=page_body(items, token, url))


def _is_openvex(content_type: str, data: Any) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == OPENVEX_MEDIA_TYPE or (isinstance(data, dict) and set(data) ==
                                                {"openvex"})


def create_rules(store: Store, body: bytes, content_type: str, now: datetime) -> ApiResponse:
    """A rule (JSON object) or an OpenVEX document's ``not_affected`` statements.

    OpenVEX comes as the body with ``Content-Type: application/vnd.openvex+json`` or wrapped
    as ``{"openvex": {...}}``; its rules replace earlier imports of the same statements.
    A plain rule is 201 when new, 200 when the same rule (same id and criteria) exists, 409
    when its id is taken by a different rule.
    """
    data = json_body(body, "a rule or an OpenVEX document")
    if _is_openvex(content_type, data):
        document = data["openvex"] if isinstance(data, dict) and set(data) == {"openvex"} \
            else data
        imported = rules_from_openvex(document, now=now)
        if not imported:
            raise BadRequest("the OpenVEX document has no not_affected statement to import")
        for rule in imported:
            put_rule(store, rule)
        reapply_rules(store, now, created=True)
        return ApiResponse(status=201, body={"value": [rule_to_json(rule) for rule in imported]})
    rule = rule_from_json(data, now=now)
    if not create_rule(store, rule):
        existing = get_rule(store, rule.id)
        if existing.criteria != rule.criteria:
            return ApiResponse(status=409, body=error_body(
                "Conflict", f"rule {rule.id!r} exists with other criteria; delete it first"))
        return ApiResponse(status=200, body=rule_to_json(existing))
    reapply_rules(store, now, created=True)
    return ApiResponse(status=201, body=rule_to_json(rule),
                       headers=(("Location", f"rules/{rule.id}"),))


def delete_rule(store: Store, rule_id: str, now: datetime) -> ApiResponse:
    if not _RULE_ID.fullmatch(rule_id):
        raise BadRequest(f"not a rule id: {rule_id[:80]!r}")
    store.rules.delete(rule_id)
    reapply_rules(store, now, created=False)
    return ApiResponse(status=204)


# ---------------------------------------------------------------- billing


def billing(store: Store, query: Mapping[str, str], now: datetime,
            url: str = "") -> ApiResponse:
    """A month's billing (``month=YYYY-MM``, default the current UTC month)."""
    paging = paging_parameters(query)
    month = text_parameter(query, "month") or f"{now.astimezone(UTC):%Y-%m}"
    # check_month's \d would take any Unicode digit (full-width ones too): ASCII first.
    if not month.isascii():
        raise BadRequest(f"month must be YYYY-MM, got {month!r}")
    month = check_month(month)
    unit_price, currency = price_from_settings()
    summary = store.billing.summary(month)
    page = store.billing.billed_images(month, paging.page_size, paging.token)
    totals = {name: str(amount) for name, amount in sorted(summary.totals.items())}
    return ApiResponse(status=200, body=page_body(
        [billing_json(record) for record in page.items], page.next_token, url,
        month=month, count=summary.count, unitPrice=str(unit_price), currency=currency,
        total=str(summary.totals.get(currency, Decimal(0))), totals=totals,
    ))
