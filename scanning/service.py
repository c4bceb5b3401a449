"""The scan service: what the function app's activities and timers do, as plain functions.

``scanning/functions/`` parses trigger input and calls one function here; tests call the same
functions directly against Azurite and a real registry. The steps of one scan:

1. ``prepare``: record the push, open the scan's history row, resolve the image (every platform),
   and list the layers the layer cache does not have yet;
2. ``read_layer`` per uncached layer (the orchestration fans these out);
3. ``finish``: build each platform's inventory from the cached layer results, store the
   inventories (so rescans never pull again), then ``assess``.

``assess`` matches inventories against the advisory index, applies disable rules, stores the
assessment (findings replaced atomically for readers), bills the first scan of a digest, closes
the history row and sends a notification when the image newly needs attention. Weekly rescans
call ``assess`` on stored inventories: no pull, no bill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError

from scanning.advisories.blob import INDEX_BLOB_NAME, load_index_from_blob
from scanning.advisories.index import (
    AdvisoryIndex,
    IndexChange,
    LookupKey,
    content_fingerprint,
    decode_key_fingerprints,
    diff_key_fingerprints,
    encode_key_fingerprints,
    key_fingerprints,
)
from scanning.analysis import analyze_layer, build_inventory
from scanning.analyzers import analyzer_set_version
from scanning.config import int_setting, setting
from scanning.errors import (
    AdvisoryError,
    LayerError,
    ManifestError,
    NotFound,
    ScanError,
    StoreError,
)
from scanning.events import RegistryEvent, parse_time
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.layer_types import LayerInfo, LayerResult
from scanning.layercache import BlobLayerCache, LayerCache
from scanning.matching import (
    Lookup,
    lookup_signature,
    lookups_affected,
    match_inventory,
    package_lookups,
)
from scanning.model import AssessmentStatus, Finding, Platform, ScanTrigger
from scanning.notify import AssessmentSummary, build_message, needs_notification, send, summarise
from scanning.pulls import pull_from_event
from scanning.registry import (
    PlatformImage,
    ResolvedImage,
    ResolveStatus,
    open_source,
    parse_reference,
    resolve_image,
)
from scanning.rules import DisableRule, ImageContext, apply_rules, assessment_status
from scanning.store.blobs import BlobKind
from scanning.store.clients import StorageClients, StorageSettings
from scanning.store.entities import bounded_text
from scanning.store.findings import Assessment, PlatformFindings, encode_findings
from scanning.store.images import (
    ImageRecord,
    RowUpdate,
    decode_match_keys,
    encode_match_keys,
    inventory_columns,
)
from scanning.store.scans import ScanRecord, new_scan_id
from scanning.store.store import Store

log = logging.getLogger(__name__)

INVENTORY_SCHEMA = 1
INDEX_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
_INDEX_CHECK_SECONDS = 60.0


# ------------------------------------------------------------------------------------ requests


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    registry: str
    repository: str
    digest: str
    tag: str = ""
    media_type: str = ""
    trigger: ScanTrigger = ScanTrigger.PUSH
    requested_at: str = ""  # ISO 8601, the event's time

    def to_json(self) -> dict[str, str]:
        return {"registry": self.registry, "repository": self.repository,
                "digest": self.digest, "tag": self.tag, "media_type": self.media_type,
                "trigger": self.trigger.value, "requested_at": self.requested_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanRequest:
        return cls(registry=str(data["registry"]), repository=str(data["repository"]),
                   digest=str(data["digest"]), tag=str(data.get("tag") or ""),
                   media_type=str(data.get("media_type") or ""),
                   trigger=ScanTrigger(data.get("trigger") or ScanTrigger.PUSH.value),
                   requested_at=str(data.get("requested_at") or ""))

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def may_be_index_child(self) -> bool:
        """Untagged manifest pushes: what pushing an index sends first, once per platform."""
        return (self.trigger is ScanTrigger.PUSH and not self.tag
                and self.media_type not in INDEX_MEDIA_TYPES)


# The results API starts on-demand scans with this user agent, so they are recorded as manual.
MANUAL_SCAN_USER_AGENT = "acr-scan-api/manual"


def trigger_of(event: RegistryEvent) -> ScanTrigger:
    """ACR delivers `az acr import` as an ImagePushed event; its user agent names the importer."""
    if event.user_agent == MANUAL_SCAN_USER_AGENT:
        return ScanTrigger.MANUAL
    return ScanTrigger.IMPORT if "import" in event.user_agent.lower() else ScanTrigger.PUSH


def request_from_event(event: RegistryEvent) -> ScanRequest:
    return ScanRequest(registry=event.registry, repository=event.repository,
                       digest=event.digest, tag=event.tag, media_type=event.media_type,
                       trigger=trigger_of(event), requested_at=event.time)


# ------------------------------------------------------------------------------------ services


class IndexSource:
    """The advisory index from Blob Storage, reloaded when the published blob changes.

    Workers check the blob's ETag at most once a minute, so a newly published index is picked
    up without a restart.
    """

    def __init__(self, store: Store) -> None:
        self._service = store.clients.blob_service()
        self._lock = threading.Lock()
        self._index: AdvisoryIndex | None = None
        self._etag = ""
        self._checked = 0.0
        self._keys: tuple[str, dict[LookupKey, str]] | None = None

    def _current_etag(self) -> str:
        blob = self._service.get_blob_client(setting("ADVISORY_CONTAINER"), INDEX_BLOB_NAME)
        try:
            return str(blob.get_blob_properties().etag)
        except Exception as error:  # the SDK raises several types; all mean "cannot tell"
            raise StoreError(f"cannot read the advisory index properties: {error}",
                             retryable=True) from error

    def get(self) -> tuple[AdvisoryIndex, str]:
        """The index and its version (build time + ETag)."""
        with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._checked > _INDEX_CHECK_SECONDS:
                etag = self._current_etag()
                if self._index is None or etag != self._etag:
                    self._index = load_index_from_blob(self._service)
                    self._etag = etag
                    log.info("loaded advisory index built %s (etag %s)", self._index.built, etag)
                self._checked = now
            return self._index, f"{self._index.built}|{self._etag}"

    def key_fingerprints(self, index: AdvisoryIndex,
                         version: str) -> dict[LookupKey, str]:
        """``key_fingerprints(index)`` of the index ``get`` returned, computed once."""
        with self._lock:
            if self._keys is None or self._keys[0] != version:
                self._keys = (version, key_fingerprints(index))
            return self._keys[1]

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0


@dataclass(slots=True, kw_only=True)
class Services:
    store: Store
    layer_cache: LayerCache
    index: IndexSource
    queue_client: Any | None
    # Index versions whose key fingerprints are known to be stored (``record_index_keys``).
    index_keys_recorded: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def create(cls, store: Store) -> Services:
        """Create what is missing (tables, containers, the queue), then ``open``."""
        store.create()
        container = cls.layer_cache_container(store)
        if not container.exists():
            container.create_container()
        services = cls.open(store)
        queue = services.queue_client
        assert queue is not None
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        return services

    @classmethod
    def open(cls, store: Store) -> Services:
        """The services of a store whose tables, containers and queue exist."""
        queue = store.clients.queue_service().get_queue_client(setting("NOTIFY_QUEUE_NAME"))
        return cls(store=store, layer_cache=BlobLayerCache(cls.layer_cache_container(store)),
                   index=IndexSource(store), queue_client=queue)

    @staticmethod
    def layer_cache_container(store: Store) -> Any:
        return store.clients.blob_service().get_container_client(f"{store.prefix}-layercache")


_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """The worker's services, built once from settings."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services.create(Store.from_settings())
        return _services


# ------------------------------------------------------------------------------------ scanning


def _resolved_to_json(resolved: ResolvedImage) -> dict[str, Any]:
    return {
        "reference": resolved.reference, "digest": resolved.digest,
        "media_type": resolved.media_type,
        "platforms": [
            {"platform": str(image.platform), "manifest_digest": image.manifest_digest,
             "media_type": image.media_type, "config_digest": image.config_digest,
             "layers": [dataclasses.asdict(layer) for layer in image.layers]}
            for image in resolved.platforms
        ],
    }


def _resolved_from_json(data: dict[str, Any]) -> ResolvedImage:
    return ResolvedImage(
        reference=data["reference"], digest=data["digest"], media_type=data["media_type"],
        status=ResolveStatus.IMAGE,
        platforms=tuple(
            PlatformImage(platform=Platform.parse(item["platform"]),
                          manifest_digest=item["manifest_digest"],
                          media_type=item["media_type"], config_digest=item["config_digest"],
                          layers=tuple(LayerInfo(**layer) for layer in item["layers"]))
            for item in data["platforms"]
        ),
    )


def parent_index(svc: Services, registry: str, digest: str) -> str:
    """The index that lists ``digest`` as one of its platforms, if one was scanned."""
    name = f"{registry}/{digest}"
    try:
        return svc.store.blobs.get(BlobKind.CHILDREN, name).decode()
    except NotFound:
        return ""


def record_push(svc: Services, request: ScanRequest) -> None:
    """Record a push (tag, push time) on the image; rescans are not pushes."""
    if request.trigger is ScanTrigger.RESCAN:
        return
    svc.store.images.record_push(registry=request.registry, repository=request.repository,
                                 digest=request.digest, at=parse_time(request.requested_at),
                                 tag=request.tag, media_type=request.media_type)


def prepare(svc: Services, request: ScanRequest, scan_id: str) -> dict[str, Any]:
    """Record the push, resolve the image, and list the layers still to be read."""
    store = svc.store
    at = parse_time(request.requested_at)
    record_push(svc, request)
    store.scans.start(registry=request.registry, repository=request.repository,
                      digest=request.digest, trigger=request.trigger, started=at,
                      scan_id=scan_id)
    source = open_source(parse_reference(request.reference))
    try:
        resolved = resolve_image(source, parse_reference(request.reference))
    except ScanError as error:
        if error.retryable:
            raise  # the orchestration's retry policy runs this activity again
        # A permanent error (manifest gone, malformed, access refused) ends the scan now:
        # retrying it would only delay the same answer.
        outcome = record_outcome(svc, request, scan_id, AssessmentStatus.FAILED, str(error))
        return {"done": True, **outcome}
    finally:
        source.close()
    if resolved.status is not ResolveStatus.IMAGE:
        status = (AssessmentStatus.UNSUPPORTED if resolved.status is ResolveStatus.UNSUPPORTED
                  else AssessmentStatus.NOT_APPLICABLE)
        outcome = record_outcome(svc, request, scan_id, status, resolved.reason)
        return {"done": True, **outcome}
    for image in resolved.platforms:
        if image.manifest_digest != resolved.digest:
            store.blobs.put(BlobKind.CHILDREN, f"{request.registry}/{image.manifest_digest}",
                            resolved.digest.encode(), content_type="text/plain")
    version = analyzer_set_version()
    unique: dict[str, LayerInfo] = {}
    for image in resolved.platforms:
        for layer in image.layers:
            unique.setdefault(layer.digest, layer)
    missing = [dataclasses.asdict(layer) for layer in unique.values()
               if svc.layer_cache.get(layer.digest, version) is None]
    log.info("scan %s of %s: %d platforms, %d layers, %d to read", scan_id, request.reference,
             len(resolved.platforms), len(unique), len(missing))
    return {"done": False, "resolved": _resolved_to_json(resolved), "layers": missing}


def read_layer(svc: Services, request: ScanRequest, layer: dict[str, Any]) -> dict[str, str]:
    """Read one layer into the layer cache. A layer that cannot be read is a result, not a
    retry: its error fails the platforms that contain it. Transient errors raise."""
    info = LayerInfo(**layer)
    source = open_source(parse_reference(request.reference))
    try:
        analyze_layer(source, info, cache=svc.layer_cache)
    except (LayerError, ManifestError, NotFound) as error:
        log.warning("layer %s of %s cannot be read: %s", info.digest, request.reference, error)
        return {"digest": info.digest, "error": str(error)}
    finally:
        source.close()
    return {"digest": info.digest, "error": ""}


def inventory_from_cache(resolved: ResolvedImage, image: PlatformImage, cache: LayerCache,
                         analyzer_version: str, layer_errors: dict[str, str]) -> ImageInventory:
    """One platform's inventory from cached layer results; the first unreadable layer fails it."""
    results: list[LayerResult] = []
    failure = ""
    count = len(image.layers)
    for position, layer in enumerate(image.layers, start=1):
        error = layer_errors.get(layer.digest, "")
        cached = None if error else cache.get(layer.digest, analyzer_version)
        if cached is None:
            failure = f"layer {position}/{count} {layer.digest}: {error or 'not in the cache'}"
            break
        results.append(cached)
    return build_inventory(resolved, image, tuple(results), analyzer_version=analyzer_version,
                           failure=failure)


def finish(svc: Services, request: ScanRequest, scan_id: str, resolved_json: dict[str, Any],
           layer_errors: dict[str, str]) -> dict[str, Any]:
    """Build every platform's inventory from the layer cache, store them, then assess."""
    resolved = _resolved_from_json(resolved_json)
    version = analyzer_set_version()
    inventories = tuple(
        inventory_from_cache(resolved, image, svc.layer_cache, version, layer_errors)
        for image in resolved.platforms
    )
    save_inventories(svc, request.registry, request.digest, inventories)
    return assess(svc, request=request, scan_id=scan_id, inventories=inventories)


def save_inventories(svc: Services, registry: str, digest: str,
                     inventories: tuple[ImageInventory, ...]) -> None:
    document = {"schema": INVENTORY_SCHEMA, "digest": digest,
                "analyzer_set_version": analyzer_set_version(),
                "platforms": [inventory.to_json() for inventory in inventories]}
    svc.store.blobs.put_inventory(registry, digest, json.dumps(document).encode())


def parse_inventories(data: bytes, registry: str,
                      digest: str) -> tuple[ImageInventory, ...] | None:
    """An inventory document's inventories; None when unreadable or made by another analyzer
    set."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        log.warning("inventory of %s in %s is unreadable (%s): it is analysed again", digest,
                    registry, error)
        return None
    if (not isinstance(document, dict) or document.get("schema") != INVENTORY_SCHEMA
            or document.get("analyzer_set_version") != analyzer_set_version()):
        return None
    try:
        return tuple(ImageInventory.from_json(item) for item in document["platforms"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        log.warning("inventory of %s in %s is malformed (%s): it is analysed again", digest,
                    registry, error)
        return None


def _platform_status(inventory: ImageInventory, matched: AssessmentStatus) -> AssessmentStatus:
    if inventory.status is InventoryStatus.FAILED:
        return AssessmentStatus.FAILED
    if inventory.status is InventoryStatus.PARTIAL and matched is AssessmentStatus.HEALTHY:
        return AssessmentStatus.PARTIAL
    return matched


# Worst first: an image is as bad as its worst platform.
_STATUS_ORDER = (AssessmentStatus.FAILED, AssessmentStatus.UNHEALTHY, AssessmentStatus.PARTIAL,
                 AssessmentStatus.UNSUPPORTED, AssessmentStatus.HEALTHY,
                 AssessmentStatus.NOT_APPLICABLE)


def combine_statuses(statuses: Iterable[AssessmentStatus]) -> AssessmentStatus:
    present = set(statuses)
    for status in _STATUS_ORDER:
        if status in present:
            return status
    return AssessmentStatus.NOT_APPLICABLE


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """An inventory set matched and ruled: what ``assess`` stores."""

    results: tuple[PlatformFindings, ...]
    status: AssessmentStatus
    analysis: AssessmentStatus
    reason: str
    findings: tuple[Finding, ...]
    match_keys: bytes


def evaluate(inventories: tuple[ImageInventory, ...], *, request: ScanRequest,
             rules: tuple[DisableRule, ...], index: AdvisoryIndex,
             moment: datetime) -> Evaluation:
    """Match the inventories, apply the rules; no I/O."""
    results: list[PlatformFindings] = []
    statuses: list[AssessmentStatus] = []
    reasons: list[str] = []
    signed: dict[Lookup, str] = {}
    for inventory in inventories:
        if inventory.status is InventoryStatus.FAILED:
            findings: tuple[Finding, ...] = ()
            statuses.append(AssessmentStatus.FAILED)
            reasons.append(f"{inventory.platform}: {inventory.errors[0]}")
        else:
            matched = match_inventory(inventory.os, inventory.packages, index)
            findings = matched.findings
            statuses.append(_platform_status(inventory, matched.status))
            if matched.reason:
                reasons.append(f"{inventory.platform}: {matched.reason}")
            for lookup in package_lookups(inventory.os, inventory.packages):
                if lookup not in signed:
                    signed[lookup] = lookup_signature(index, lookup)
        context = ImageContext(registry=request.registry, repository=request.repository,
                               digest=request.digest, manifest_digest=inventory.manifest_digest,
                               os=inventory.os)
        results.append(PlatformFindings(
            platform=str(inventory.platform), manifest_digest=inventory.manifest_digest,
            os=inventory.os, findings=tuple(apply_rules(rules, findings, context, moment))))
    analysis = combine_statuses(statuses)
    all_findings = tuple(finding for result in results for finding in result.findings)
    return Evaluation(results=tuple(results), status=assessment_status(all_findings, analysis),
                      analysis=analysis, reason="; ".join(reasons), findings=all_findings,
                      match_keys=encode_match_keys(signed.items()))


def assess(svc: Services, *, request: ScanRequest, scan_id: str,
           inventories: tuple[ImageInventory, ...], now: datetime | None = None,
           index: tuple[AdvisoryIndex, str] | None = None) -> dict[str, Any]:
    """Match, apply rules, store the assessment, bill a first scan, notify, close the scan."""
    store = svc.store
    moment = now or datetime.now(UTC)
    advisory_index, index_version = index or svc.index.get()
    record_index_keys(svc, advisory_index, index_version)
    evaluation = evaluate(inventories, request=request, rules=tuple(store.rules.list()),
                          index=advisory_index, moment=moment)
    status, reason = evaluation.status, evaluation.reason
    previous = _previous_summary(store, request.registry, request.digest)
    store.save_assessment(request.registry, request.digest, Assessment(
        status=status, analysis_status=evaluation.analysis, assessed_at=moment,
        results=evaluation.results, reason=reason, analyzer_version=analyzer_set_version(),
        index_version=index_version, scan_id=scan_id, trigger=request.trigger,
        match_keys=evaluation.match_keys,
    ), request.repository)
    billed = _bill(svc, request, status, moment)
    store.scans.finish(scan_id, finished=datetime.now(UTC), outcome=status,
                       error=reason if status is AssessmentStatus.FAILED else "")
    notified = _notify(svc, request, status, list(evaluation.findings), previous)
    active = [finding for finding in evaluation.findings if not finding.disabled_by]
    return {"status": status.value, "reason": reason, "findings": len(active),
            "disabled": len(evaluation.findings) - len(active), "billed": billed,
            "notified": notified, "scan_id": scan_id}


def _previous_summary(store: Store, registry: str, digest: str) -> AssessmentSummary | None:
    image = store.images.find(registry, digest)
    return None if image is None else store.findings.previous_summary(image)


def _bill(svc: Services, request: ScanRequest, status: AssessmentStatus,
          moment: datetime) -> bool:
    # Failed and not-applicable scans produced no assessment worth paying for.
    if status in (AssessmentStatus.FAILED, AssessmentStatus.NOT_APPLICABLE):
        return False
    result = svc.store.billing.bill_first_scan(
        registry=request.registry, repository=request.repository, digest=request.digest,
        trigger=request.trigger, at=moment)
    return result.created


def _notify(svc: Services, request: ScanRequest, status: AssessmentStatus,
            findings: list[Finding], previous: AssessmentSummary | None) -> bool:
    if not needs_notification(previous, summarise(status, findings)):
        return False
    message = _message(request, status, findings, previous,
                       svc.store.images.find(request.registry, request.digest))
    if message is not None:
        _send(svc, message)
    return True


def _message(request: ScanRequest, status: AssessmentStatus, findings: Iterable[Finding],
             previous: AssessmentSummary | None, image: ImageRecord | None
             ) -> dict[str, Any] | None:
    """The notification to send for this outcome, or None when there is no problem to tell."""
    findings = tuple(findings)
    if not needs_notification(previous, summarise(status, findings)):
        return None
    return build_message(registry=request.registry, repository=request.repository,
                         digest=request.digest, tags=image.tags if image else (),
                         status=status, findings=findings, previous=previous)


def _send(svc: Services, message: dict[str, Any]) -> None:
    send(message, queue_client=svc.queue_client, webhook_url=setting("NOTIFY_WEBHOOK_URL"))


def record_outcome(svc: Services, request: ScanRequest, scan_id: str, status: AssessmentStatus,
                   reason: str) -> dict[str, Any]:
    """End a scan without findings: not applicable, unsupported, or failed with a reason."""
    moment = datetime.now(UTC)
    svc.store.save_assessment(request.registry, request.digest, Assessment(
        status=status, analysis_status=status, assessed_at=moment, reason=reason,
        analyzer_version=analyzer_set_version(), scan_id=scan_id, trigger=request.trigger,
    ), request.repository)
    billed = _bill(svc, request, status, moment)
    try:
        svc.store.scans.finish(scan_id, finished=moment, outcome=status, error=reason)
    except NotFound:
        svc.store.scans.start(registry=request.registry, repository=request.repository,
                              digest=request.digest, trigger=request.trigger,
                              started=parse_time(request.requested_at), scan_id=scan_id)
        svc.store.scans.finish(scan_id, finished=moment, outcome=status, error=reason)
    log.info("scan %s of %s: %s %s", scan_id, request.reference, status.value, reason)
    return {"status": status.value, "reason": reason, "findings": 0, "disabled": 0,
            "billed": billed, "notified": False, "scan_id": scan_id}


def record_delete(svc: Services, event: RegistryEvent) -> bool:
    """A deleted manifest: mark the image deleted (its rescans stop; its history stays)."""
    try:
        svc.store.images.mark_deleted(event.registry, event.digest, parse_time(event.time))
    except NotFound:
        log.info("delete of %s@%s: image never seen", event.repository, event.digest)
        return False
    return True


def record_pulls(svc: Services, events: Iterable[RegistryEvent]) -> int:
    """Add pulls of image manifests to the ledger (the scanner's own pulls never count)."""
    recorded = 0
    for event in events:
        pull = pull_from_event(event)
        if pull is None:
            continue
        svc.store.record_pull(registry=pull.registry, repository=pull.repository,
                              digest=pull.digest, at=pull.time, count=pull.count)
        recorded += 1
    return recorded


# ------------------------------------------------------------------------------------ rescans


@dataclass(frozen=True, slots=True, kw_only=True)
class RescanReport:
    """``rematched``: images now assessed against today's index, of which ``unaffected`` were
    proven unchanged without reading their inventory (their row was updated only),
    ``matched`` re-matched from their inventory and ``rewritten`` got new findings."""

    rematched: int
    to_reanalyze: tuple[ScanRequest, ...]
    failed: int
    unaffected: int = 0
    matched: int = 0
    rewritten: int = 0


def index_keys_name(index_version: str) -> str:
    """Blob name of an index version's key fingerprints (versions hold ``|`` and quotes)."""
    return hashlib.sha256(index_version.encode()).hexdigest()


def record_index_keys(svc: Services, index: AdvisoryIndex, index_version: str) -> None:
    """Store the index's per-key fingerprints once per version, before any image records that
    it was assessed with it: a later rescan diffs them against its own index."""
    if index_version in svc.index_keys_recorded:
        return
    name = index_keys_name(index_version)
    if not svc.store.blobs.exists(BlobKind.INDEX_KEYS, name):
        svc.store.blobs.put(BlobKind.INDEX_KEYS, name, encode_key_fingerprints(
            svc.index.key_fingerprints(index, index_version)))
    svc.index_keys_recorded.add(index_version)


@dataclass(slots=True, kw_only=True)
class _RescanRun:
    """What one rescan run knows once, for every image."""

    svc: Services
    moment: datetime
    index: AdvisoryIndex
    index_version: str
    keys: dict[LookupKey, str]
    rules: tuple[DisableRule, ...]
    analyzer_version: str
    # Rules that expired before the run: an image assessed before the last of them expired
    # has findings disabled by a rule that no longer holds.
    last_expiry: datetime | None
    changes: dict[str, IndexChange | None] = dataclasses.field(default_factory=dict)

    def change_since(self, index_version: str) -> IndexChange | None:
        """Keys changed from ``index_version`` to today's; None when unknown."""
        if index_version == self.index_version:
            return IndexChange()
        if index_version not in self.changes:
            try:
                old = decode_key_fingerprints(self.svc.store.blobs.get(
                    BlobKind.INDEX_KEYS, index_keys_name(index_version)))
            except (NotFound, AdvisoryError) as error:
                log.info("rescan: no key fingerprints of index %s (%s): its images are "
                         "re-matched", index_version, error)
                self.changes[index_version] = None
            else:
                self.changes[index_version] = diff_key_fingerprints(old, self.keys)
        return self.changes[index_version]

    def unaffected(self, image: ImageRecord) -> bool:
        """Whether today's index cannot change the image's stored assessment."""
        if (image.status is None or image.assessed_at is None
                or image.analyzer_version != self.analyzer_version
                or (self.last_expiry is not None and image.assessed_at < self.last_expiry)):
            return False
        signed = decode_match_keys(image.match_keys)
        if signed is None:
            return False
        change = self.change_since(image.index_version)
        return change is not None and not lookups_affected(signed, change, self.index)

    def history(self, image: ImageRecord, scan_id: str, status: AssessmentStatus,
                reason: str) -> ScanRecord:
        return ScanRecord(id=scan_id, registry=image.registry, repository=image.repository,
                          digest=image.digest, trigger=ScanTrigger.RESCAN, started=self.moment,
                          finished=datetime.now(UTC), outcome=status,
                          error=reason if status is AssessmentStatus.FAILED else "")

    def row_update(self, image: ImageRecord, etag: str, scan_id: str,
                   match_keys: bytes | None = None) -> RowUpdate:
        changes: dict[str, Any] = {"index_version": self.index_version,
                                   "assessed_at": self.moment, "last_scan_id": scan_id}
        if match_keys:
            changes["match_keys"] = match_keys
        return RowUpdate(registry=image.registry, digest=image.digest, etag=etag,
                         changes=changes,
                         expected={"current_generation": image.current_generation,
                                   "last_scan_id": image.last_scan_id})

    def rematch(self, image: ImageRecord, etag: str,
                copy: bytes | None = None) -> ScanRequest | _Rematched:
        """Re-match one image from its inventory: the row's copy (``copy``) when it has a
        usable one, else the blob, whose bytes then become the row's copy with the merge.
        Unchanged findings move only the row's versions; changed ones come back as a merge of
        the whole assessment into the row (both batched by the caller), or are saved at once
        when the findings document lives in a blob."""
        store = self.svc.store
        request = ScanRequest(registry=image.registry, repository=image.repository,
                              digest=image.digest, trigger=ScanTrigger.RESCAN,
                              requested_at=self.moment.isoformat())
        inventories = parse_inventories(copy, image.registry, image.digest) if copy else None
        fill: dict[str, Any] = {}
        if inventories is None:
            try:
                data = store.blobs.get_inventory(image.registry, image.digest)
            except NotFound:
                return request
            inventories = parse_inventories(data, image.registry, image.digest)
            if inventories is None:
                return request
            fill = inventory_columns(data, image.inventory_chunks)
        scan_id = rescan_id(self.moment, image.registry, image.digest)
        evaluation = evaluate(inventories, request=request, rules=self.rules, index=self.index,
                              moment=self.moment)
        encoded = encode_findings(image.digest, evaluation.results)
        history = self.history(image, scan_id, evaluation.status, evaluation.reason)
        if (image.current_generation and encoded.fingerprint == image.findings_fingerprint
                and image.status is evaluation.status
                and image.analysis_status is evaluation.analysis
                and image.reason == bounded_text(evaluation.reason)):
            update = self.row_update(image, etag, scan_id, evaluation.match_keys)
            return _Rematched(history=history, update=dataclasses.replace(
                update, changes={**update.changes, **fill}))
        assessment = Assessment(
            status=evaluation.status, analysis_status=evaluation.analysis,
            assessed_at=self.moment, results=evaluation.results, reason=evaluation.reason,
            analyzer_version=self.analyzer_version, index_version=self.index_version,
            scan_id=scan_id, trigger=ScanTrigger.RESCAN, match_keys=evaluation.match_keys)
        previous = store.findings.previous_summary(image)
        message = _message(request, evaluation.status, evaluation.findings, previous, image)
        changes = store.findings.rescan_changes(image, assessment, encoded)
        if changes is None:
            saved = store.findings.save(image.registry, image.digest, assessment,
                                        image.repository, encoded=encoded)
            if saved.applied and message is not None:
                _send(self.svc, message)
            return _Rematched(history=history, update=None)
        return _Rematched(history=history, message=message, update=RowUpdate(
            registry=image.registry, digest=image.digest, etag=etag,
            changes={**changes, **fill},
            expected={"current_generation": image.current_generation,
                      "last_scan_id": image.last_scan_id}), rewritten=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rematched:
    history: ScanRecord
    # The row merge to batch; None when the assessment was saved already.
    update: RowUpdate | None
    rewritten: bool = False  # the merge stores new findings (else: versions only)
    message: dict[str, Any] | None = None  # to send once the merge is applied


# Images to re-match are handled in chunks: each chunk's row merges are applied (in one
# transaction per registry) and its notifications sent before the next, so a run's memory
# does not grow with the number of images whose findings change.
RESCAN_CHUNK = 100
# Below this many pulled images, worker processes cost more to start than they save.
RESCAN_PROCESS_MIN_IMAGES = 400
# Row updates of unaffected images are merged every so many rows, while the listing goes on.
UNAFFECTED_BATCH = 1000


def _merge_unaffected(store: Store, updates: list[RowUpdate]) -> _ChunkReport:
    merged = store.images.merge_rows(updates)
    updates.clear()
    return _ChunkReport(applied=len(merged.applied), dropped=len(merged.dropped))


@dataclass(slots=True, kw_only=True)
class _ChunkReport:
    history: list[ScanRecord] = dataclasses.field(default_factory=list)
    reanalyze: list[ScanRequest] = dataclasses.field(default_factory=list)
    matched: int = 0
    rewritten: int = 0
    failed: int = 0
    applied: int = 0
    dropped: int = 0

    def add(self, other: _ChunkReport) -> None:
        self.history.extend(other.history)
        self.reanalyze.extend(other.reanalyze)
        self.matched += other.matched
        self.rewritten += other.rewritten
        self.failed += other.failed
        self.applied += other.applied
        self.dropped += other.dropped


def _rescan_chunk(run: _RescanRun, chunk: list[tuple[ImageRecord, str]],
                  workers: int) -> _ChunkReport:
    """Re-match a chunk of images (threads overlap the storage reads), merge the rows of the
    chunk in batched transactions, then send the notifications of the merges that applied."""
    report = _ChunkReport()
    updates: list[RowUpdate] = []
    # Merges that store new findings, with the notification to send (or None).
    rewrites: dict[tuple[str, str], dict[str, Any] | None] = {}
    try:
        copies = run.svc.store.images.inventory_copies(
            (image.registry, image.digest) for image, _ in chunk if image.inventory_chunks)
    except ScanError as error:
        log.warning("rescan: inventory copies unreadable (%s): reading the blobs", error)
        copies = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(_guarded(lambda item: run.rematch(
            item[0], item[1], copies.get((item[0].registry, item[0].digest)))), chunk))
    for (image, _), outcome in zip(chunk, outcomes, strict=True):
        if isinstance(outcome, ScanRequest):
            report.reanalyze.append(outcome)
        elif isinstance(outcome, _Rematched):
            report.matched += 1
            report.history.append(outcome.history)
            if outcome.update is None:
                report.rewritten += 1  # saved at once
            else:
                updates.append(outcome.update)
                if outcome.rewritten:
                    rewrites[(image.registry, image.digest)] = outcome.message
        else:
            report.failed += 1
            log.warning("rescan of %s in %s failed: %s", image.digest, image.registry, outcome)
            report.history.append(run.history(
                image, rescan_id(run.moment, image.registry, image.digest),
                AssessmentStatus.FAILED, str(outcome)))
    merged = run.svc.store.images.merge_rows(updates)
    report.applied, report.dropped = len(merged.applied), len(merged.dropped)
    for update in merged.applied:
        key = (update.registry, update.digest)
        if key in rewrites:
            report.rewritten += 1
            message = rewrites[key]
            if message is not None:
                _send(run.svc, message)
    return report


# ---------------------------------------------------------------- rescans in worker processes
#
# Matching is pure Python: threads share one core. A large rescan spreads its chunks over
# ``RESCAN_PROCESSES`` worker processes (spawned, so nothing of the parent's threads or
# connections is inherited); each builds its own storage clients from the same settings and
# loads the same advisory index version, then re-matches, merges and notifies chunk by chunk.
# A pool that cannot start (or dies) leaves its unfinished chunks to the calling process.


@dataclass(frozen=True, slots=True, kw_only=True)
class _RescanSpec:
    """What a worker process needs to rebuild the run (picklable)."""

    storage: StorageSettings
    prefix: str
    moment: datetime
    index_version: str
    rules: tuple[DisableRule, ...]
    analyzer_version: str
    last_expiry: datetime | None


_worker_run: _RescanRun | None = None


def _start_worker(spec: _RescanSpec) -> None:
    global _worker_run
    svc = Services.open(Store(StorageClients(settings=spec.storage), spec.prefix))
    index, version = svc.index.get()
    if version != spec.index_version:
        raise AdvisoryError(f"the advisory index changed during the rescan ({version} is not "
                            f"{spec.index_version})")
    _worker_run = _RescanRun(svc=svc, moment=spec.moment, index=index, index_version=version,
                             keys={}, rules=spec.rules, analyzer_version=spec.analyzer_version,
                             last_expiry=spec.last_expiry)


def _worker_chunk(chunk: list[tuple[ImageRecord, str]], workers: int) -> _ChunkReport:
    assert _worker_run is not None, "worker process not started"
    return _rescan_chunk(_worker_run, chunk, workers)


class _ChunkRunner:
    """Runs chunks of a rescan as they are found: in worker processes when given more than
    one (started on the first chunk, so they start while the image rows are still being
    read), else in this process. ``finish`` waits for them; chunks whose worker failed, or a
    pool that could not start, are re-matched in this process then."""

    def __init__(self, run: _RescanRun, processes: int, workers: int) -> None:
        self.run = run
        self.workers = workers
        self.totals = _ChunkReport()
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[tuple[list[tuple[ImageRecord, str]], Future[_ChunkReport]]] = []
        if processes > 1:
            spec = _RescanSpec(storage=run.svc.store.clients.settings,
                               prefix=run.svc.store.prefix, moment=run.moment,
                               index_version=run.index_version, rules=run.rules,
                               analyzer_version=run.analyzer_version,
                               last_expiry=run.last_expiry)
            self.pool = ProcessPoolExecutor(
                max_workers=processes, initializer=_start_worker, initargs=(spec,),
                mp_context=multiprocessing.get_context("spawn"))
            # Each process overlaps its storage reads with a few threads of its own.
            self.workers = max(2, workers // processes)

    def submit(self, chunk: list[tuple[ImageRecord, str]]) -> None:
        if self.pool is None:
            self.totals.add(_rescan_chunk(self.run, chunk, self.workers))
            return
        try:
            self.futures.append((chunk, self.pool.submit(_worker_chunk, chunk, self.workers)))
        except (BrokenProcessPool, RuntimeError):
            self.totals.add(_rescan_chunk(self.run, chunk, self.workers))

    def abandon(self) -> None:
        """Stop the workers without waiting for their chunks (the run failed)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def finish(self) -> _ChunkReport:
        if self.pool is None:
            return self.totals
        left: list[list[tuple[ImageRecord, str]]] = []
        try:
            for chunk, future in self.futures:
                try:
                    self.totals.add(future.result())
                except (BrokenProcessPool, OSError, ScanError) as error:
                    log.warning("rescan worker process failed (%s): its %d images are "
                                "re-matched here", error, len(chunk))
                    left.append(chunk)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for chunk in left:
            self.totals.add(_rescan_chunk(self.run, chunk, self.workers))
        return self.totals


def rescan_id(moment: datetime, registry: str, digest: str) -> str:
    """The history's id format (time + 8 hex); deterministic per run and image, so a rerun of
    the same timer tick rewrites its record rather than adding a second."""
    return new_scan_id(moment, unique=f"rescan/{registry}/{digest}")


def rescan_pulled(svc: Services, *, now: datetime | None = None, window_days: int | None = None,
                  workers: int = 8, processes: int | None = None) -> RescanReport:
    """Re-assess every image pulled in the window against today's index: no pull, no bill.

    Scan once, match many, and touch only what can change. Once per run: the pull ledger
    (one query), the image rows (one paged query), the inventory names (one listing), the
    rules, and today's index with its per-key fingerprints. Per image, from its row alone:

    * the index keys its packages are looked up by did not change since the index it was
      assessed with, or changed without changing what matches its package versions
      (``matching.lookups_affected``): its findings are what is stored, so only the row's
      ``index_version``, ``assessed_at`` and ``last_scan_id`` move, in batched merges of up
      to 100 rows of one registry;
    * otherwise its inventory is re-matched (read from the row's copy, one query per chunk,
      or from its blob the first time, which then leaves the copy); unchanged findings
      again only move the row,
      changed ones are merged into the row with the new assessment (its findings live in
      the row, ``store.findings``), both in batched transactions per chunk of
      ``RESCAN_CHUNK`` images, and notified when new once the merge applied. Large runs
      spread the chunks over ``processes`` worker processes (default: the setting
      ``RESCAN_PROCESSES``), each overlapping its reads with threads;
    * no inventory, or one made by another analyzer set: returned for a full re-analysis
      (the caller starts those scans, also unbilled).

    Every re-assessed image gets its scan history row (trigger ``rescan``), written in
    transactions of 100 at the end of the run.
    """
    moment = now or datetime.now(UTC)
    store = svc.store
    days = window_days if window_days is not None else int_setting("PULL_WINDOW_DAYS")
    advisory_index, index_version = svc.index.get()
    record_index_keys(svc, advisory_index, index_version)
    pulled = {(entry.registry, entry.digest)
              for entry in store.images_pulled_since(moment - timedelta(days=days))}
    rules = tuple(store.rules.list())
    expiries = [rule.expires for rule in rules
                if rule.expires is not None and rule.expires <= moment]
    run = _RescanRun(svc=svc, moment=moment, index=advisory_index, index_version=index_version,
                     keys=svc.index.key_fingerprints(advisory_index, index_version), rules=rules,
                     analyzer_version=analyzer_set_version(),
                     last_expiry=max(expiries) if expiries else None)
    inventories = store.blobs.inventory_names() if pulled else frozenset()
    if processes is None:
        processes = int_setting("RESCAN_PROCESSES") or os.cpu_count() or 1
    runner = _ChunkRunner(run, processes if len(pulled) >= RESCAN_PROCESS_MIN_IMAGES else 1,
                          workers)
    updates: list[RowUpdate] = []
    history: list[ScanRecord] = []
    to_match: list[tuple[ImageRecord, str]] = []
    reanalyze: list[ScanRequest] = []
    merged = _ChunkReport()
    unaffected = 0
    images = store.images.iter_with_etags() if pulled else iter(())
    try:
        for image, etag in images:
            if (image.registry, image.digest) not in pulled:
                continue
            if store.blobs.inventory_name(image.registry, image.digest) not in inventories:
                reanalyze.append(ScanRequest(
                    registry=image.registry, repository=image.repository, digest=image.digest,
                    trigger=ScanTrigger.RESCAN, requested_at=moment.isoformat()))
            elif run.unaffected(image):
                unaffected += 1
                scan_id = rescan_id(moment, image.registry, image.digest)
                if image.assessed_at is None or image.assessed_at <= moment:
                    updates.append(run.row_update(image, etag, scan_id))
                assert image.status is not None
                history.append(run.history(image, scan_id, image.status, image.reason))
            else:
                to_match.append((image, etag))
            if len(to_match) == RESCAN_CHUNK:
                runner.submit(to_match)
                to_match = []
            if len(updates) >= UNAFFECTED_BATCH:
                merged.add(_merge_unaffected(store, updates))
        if to_match:
            runner.submit(to_match)
        merged.add(_merge_unaffected(store, updates))
    except BaseException:
        runner.abandon()
        raise
    totals = runner.finish()
    totals.add(merged)
    history.extend(totals.history)
    reanalyze.extend(totals.reanalyze)
    store.scans.record_finished(history)
    log.info("weekly rescan: %d re-assessed (%d unaffected by the index change, %d re-matched, "
             "%d with new findings), %d rows updated in batches (%d superseded), %d to "
             "re-analyse, %d failed", unaffected + totals.matched, unaffected, totals.matched,
             totals.rewritten, totals.applied, totals.dropped, len(reanalyze), totals.failed)
    return RescanReport(rematched=unaffected + totals.matched, to_reanalyze=tuple(reanalyze),
                        failed=totals.failed, unaffected=unaffected, matched=totals.matched,
                        rewritten=totals.rewritten)


def _guarded(function: Any) -> Any:
    def run(target: Any) -> Any:
        try:
            return function(target)
        except ScanError as error:
            return f"error: {error}"
    return run


def child_grace_seconds() -> int:
    """How long an untagged manifest push waits for an index that lists it (a setting)."""
    return int_setting("INDEX_CHILD_GRACE_SECONDS")


# ------------------------------------------------------------------------------------ catch-up


def configured_registries() -> tuple[str, ...]:
    return tuple(name.strip() for name in setting("REGISTRIES").split(",") if name.strip())


def catch_up(svc: Services, registries: Iterable[str] | None = None, *,
             now: datetime | None = None) -> tuple[ScanRequest, ...]:
    """Images in the registries that have no assessment: a missed event never means never
    scanned. Returns the scans to start (trigger ``catchup``)."""
    from scanning.catalog import list_images

    moment = now or datetime.now(UTC)
    requests: list[ScanRequest] = []
    for registry in registries if registries is not None else configured_registries():
        for image in list_images(registry):
            record = svc.store.images.find(registry, image.digest)
            if record is not None and (record.status is not None or record.deleted):
                continue
            if parent_index(svc, registry, image.digest):
                continue
            requests.append(ScanRequest(
                registry=registry, repository=image.repository, digest=image.digest,
                tag=image.tags[0] if image.tags else "", media_type=image.media_type,
                trigger=ScanTrigger.CATCHUP, requested_at=moment.isoformat()))
    log.info("catch-up found %d images without an assessment", len(requests))
    return tuple(requests)


# ------------------------------------------------------------------------------------ advisories


def refresh_advisories(svc: Services, workdir: Path) -> bool:
    """Download the feeds, compile and publish the index; True when its content changed.

    A failed download raises before anything is published: the previous index stays.
    """
    from scanning.advisories.blob import publish_index
    from scanning.advisories.feeds import download_feed
    from scanning.advisories.index import compile_index, write_index
    from scanning.advisories.osv import iter_records
    from scanning.commands.db import update_ecosystems

    ecosystems = update_ecosystems([])
    zips = [download_feed(ecosystem, workdir / ecosystem / "all.zip")
            for ecosystem in ecosystems]
    records = (record for path in zips for record in iter_records(path))
    index = compile_index(records, sources=[str(path) for path in zips], ecosystems=ecosystems)
    try:
        current, current_version = svc.index.get()
        previous = content_fingerprint(svc.index.key_fingerprints(current, current_version))
    except ScanError:
        previous = ""
    if previous == content_fingerprint(key_fingerprints(index)):
        log.info("advisory index unchanged (%d advisories)", len(index.advisories))
        return False
    path = workdir / "index.idx"
    write_index(index, path)
    publish_index(svc.store.clients.blob_service(), path)
    svc.index.invalidate()
    return True


# ------------------------------------------------------------------------------------ pulls


def sync_pulls_from_log_analytics(svc: Services, *, now: datetime | None = None) -> int:
    """Azure: copy pulls from the registry's resource logs into the ledger.

    Only rows newer than the previous sync are read, so no pull is counted twice.
    """
    from azure.identity import DefaultAzureCredential

    from scanning.pulls import query_log_analytics

    workspace = setting("LOG_ANALYTICS_WORKSPACE_ID")
    if not workspace:
        return 0
    moment = now or datetime.now(UTC)
    marker = "log-analytics-sync"
    try:
        last = datetime.fromisoformat(svc.store.blobs.get(BlobKind.CHILDREN, marker).decode())
    except NotFound:
        last = moment - timedelta(days=int_setting("PULL_WINDOW_DAYS"))
    records = query_log_analytics(workspace, (last, moment), DefaultAzureCredential())
    for record in records:
        svc.store.record_pull(registry=record.registry, repository=record.repository,
                              digest=record.digest, at=record.time, count=record.count)
    svc.store.blobs.put(BlobKind.CHILDREN, marker, moment.isoformat().encode(),
                        content_type="text/plain")
    return len(records)
