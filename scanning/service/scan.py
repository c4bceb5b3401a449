"""One scan, as the orchestration runs it (``scanning.functions.orchestration``):

1. ``prepare_scan``: record the push, open the scan's history row, resolve the image (every
   platform), and list the layers the layer cache does not have yet;
2. ``analyze_layer`` per uncached layer (the orchestration fans these out);
3. ``assess_image``: build each platform's inventory from the cached layer results, store the
   inventories (so rescans never pull again), then ``record_verdict``: match, decide the
   verdict (``scanning.assessment``), store it, bill the first scan of a digest, close the
   history row and notify when the image newly needs attention.

``record_outcome`` ends a scan that has no inventories (not an image, unsupported, failed).
Registry deletes and pulls are recorded here too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from scanning.advisories.index import AdvisoryIndex
from scanning.analysis import analyze_layer as analyze_registry_layer
from scanning.analysis import build_inventory
from scanning.analyzers import analyzer_set_version
from scanning.assessment import Verdict, outcome
from scanning.config import int_setting
from scanning.errors import NotFound, ScanError
from scanning.events import RegistryEvent, parse_time
from scanning.findings_export import export_assessment, identity_uploader
from scanning.inventory import ImageInventory
from scanning.layer_types import LayerInfo, LayerResult
from scanning.layercache import LayerCache
from scanning.matcher_version import matcher_version
from scanning.model import AssessmentStatus, ScanState, ScanTrigger
from scanning.pulls import pull_from_event
from scanning.registry import (
    PlatformImage,
    ResolvedImage,
    ResolveStatus,
    open_source,
    parse_reference,
    resolve_image,
)
from scanning.service.context import Services, record_index_keys
from scanning.service.evaluation import (
    evaluate,
    notification,
    save_inventories,
    send_notification,
)
from scanning.service.payloads import (
    AssessStep,
    LayerOutcome,
    LayerStep,
    Prepared,
    ScanOutcome,
    ScanRequest,
    ScanStep,
)
from scanning.service.rules import load_rules
from scanning.store.advisory_index import NO_INDEX_REASON
from scanning.store.blobs import BlobKind
from scanning.store.findings import Assessment

log = logging.getLogger(__name__)


def child_grace_seconds() -> int:
    """How long an untagged manifest push waits for an index that lists it (a setting)."""
    return int_setting("INDEX_CHILD_GRACE_SECONDS")


def parent_index(services: Services, registry: str, digest: str) -> str:
    """The index that lists ``digest`` as one of its platforms, if one was scanned."""
    try:
        return services.store.blobs.get(BlobKind.CHILDREN, f"{registry}/{digest}").decode()
    except NotFound:
        return ""


def record_push(services: Services, request: ScanRequest,
                scan_state: ScanState | None = None) -> None:
    """Record a push (tag, push time) on the image, and ``scan_state`` when the push starts
    or runs a scan; rescans are not pushes: they record only the state, and a scan asked for
    through the API (``manual``) records the tag and state but not a push time."""
    images = services.store.images
    if request.trigger is ScanTrigger.RESCAN:
        if scan_state is not None:
            images.set_scan_state(request.registry, request.repository, request.digest,
                                  scan_state)
        return
    images.record_push(
        registry=request.registry, repository=request.repository, digest=request.digest,
        at=parse_time(request.requested_at), tag=request.tag, media_type=request.media_type,
        scan_state=scan_state, pushed=request.trigger is not ScanTrigger.MANUAL)


def image_size(resolved: ResolvedImage) -> int:
    """What the registry stores for the image: its manifests' configs and layers, each blob
    once (platforms of an index may share layers)."""
    sizes: dict[str, int] = {}
    for image in resolved.platforms:
        sizes[image.config_digest] = image.config_size
        sizes.update((layer.digest, layer.size) for layer in image.layers)
    return sum(sizes.values())


def prepare_scan(services: Services, step: ScanStep) -> Prepared:
    """Record the push, resolve the image, and list the layers still to be read."""
    request, scan_id = step.request, step.scan_id
    store = services.store
    record_push(services, request, ScanState.SCANNING)
    store.scans.start(registry=request.registry, repository=request.repository,
                      digest=request.digest, trigger=request.trigger,
                      started=parse_time(request.requested_at), scan_id=scan_id)
    source = open_source(parse_reference(request.reference))
    try:
        resolved = resolve_image(source, parse_reference(request.reference))
    except ScanError as error:
        if error.retryable:
            raise  # the orchestration's retry policy runs this activity again
        # A permanent error (manifest gone, malformed, access refused) ends the scan now:
        # retrying it would only delay the same answer.
        return Prepared(outcome=record_outcome(
            services, step, outcome(AssessmentStatus.FAILED, str(error))))
    finally:
        source.close()
    if resolved.status is not ResolveStatus.IMAGE:
        status = (AssessmentStatus.UNSUPPORTED if resolved.status is ResolveStatus.UNSUPPORTED
                  else AssessmentStatus.NOT_APPLICABLE)
        return Prepared(outcome=record_outcome(services, step, outcome(status, resolved.reason)))
    store.images.set_size(request.registry, request.repository, request.digest,
                          image_size(resolved))
    for image in resolved.platforms:
        if image.manifest_digest != resolved.digest:
            store.blobs.put(BlobKind.CHILDREN, f"{request.registry}/{image.manifest_digest}",
                            resolved.digest.encode(), content_type="text/plain")
    version = analyzer_set_version()
    unique: dict[str, LayerInfo] = {}
    for image in resolved.platforms:
        for layer in image.layers:
            unique.setdefault(layer.digest, layer)
    missing = tuple(layer for layer in unique.values()
                    if services.layer_cache.get(layer.digest, version) is None)
    log.info("scan %s of %s: %d platforms, %d layers, %d to read", scan_id, request.reference,
             len(resolved.platforms), len(unique), len(missing))
    return Prepared(resolved=resolved, layers=missing)


def analyze_layer(services: Services, step: LayerStep) -> LayerOutcome:
    """Read one layer into the layer cache. A layer that cannot be read is a result, not a
    retry: its error fails the platforms that contain it. Only transient errors raise (the
    orchestration's retry policy runs the activity again; it cannot tell errors apart, so a
    permanent one, such as access refused, is returned, never raised)."""
    layer = step.layer
    source = open_source(parse_reference(step.request.reference))
    try:
        analyze_registry_layer(source, layer, cache=services.layer_cache)
    except ScanError as error:
        if error.retryable:
            raise
        log.warning("layer %s of %s cannot be read: %s", layer.digest, step.request.reference,
                    error)
        return LayerOutcome(digest=layer.digest, error=str(error))
    finally:
        source.close()
    return LayerOutcome(digest=layer.digest)


def inventory_from_cache(resolved: ResolvedImage, image: PlatformImage, cache: LayerCache,
                         analyzer_version: str, layer_errors: Mapping[str, str]
                         ) -> ImageInventory:
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


def assess_image(services: Services, step: AssessStep) -> ScanOutcome:
    """Build every platform's inventory from the layer cache, store them, then record the
    verdict."""
    request = step.step.request
    version = analyzer_set_version()
    errors = {outcome.digest: outcome.error for outcome in step.layer_errors if outcome.error}
    inventories = tuple(
        inventory_from_cache(step.resolved, image, services.layer_cache, version, errors)
        for image in step.resolved.platforms
    )
    document = save_inventories(services, request.registry, request.digest, inventories)
    return record_verdict(services, step.step, inventories, inventory=document)


def record_verdict(services: Services, step: ScanStep, inventories: tuple[ImageInventory, ...],
                   *, now: datetime | None = None,
                   index: tuple[AdvisoryIndex, str] | None = None,
                   inventory: str = "") -> ScanOutcome:
    """Match, decide the verdict, store it, bill a first scan, notify, close the scan.
    ``inventory``: the stored inventory document's ``inventory_digest`` ("" when unknown)."""
    request = step.request
    store = services.store
    moment = now or datetime.now(UTC)
    try:
        advisory_index, index_version = index or services.index.get()
    except NotFound:  # nothing to assess with is not a failure of the image
        return record_outcome(services, step, outcome(AssessmentStatus.UNSUPPORTED,
                                                      NO_INDEX_REASON))
    record_index_keys(services, advisory_index, index_version)
    evaluation = evaluate(inventories, request=request, rules=load_rules(store),
                          index=advisory_index, moment=moment, inventory=inventory)
    verdict = evaluation.verdict
    image = store.images.find(request.registry, request.repository, request.digest)
    previous = None if image is None else store.findings.previous_summary(image)
    store.save_assessment(request.registry, request.repository, request.digest, Assessment(
        status=verdict.status, analysis_status=verdict.analysis, assessed_at=moment,
        results=verdict.platforms, reason=verdict.reason,
        analyzer_version=analyzer_set_version(), index_version=index_version,
        matcher_version=matcher_version(), scan_id=step.scan_id, trigger=request.trigger,
        match_keys=evaluation.match_keys,
    ))
    billed = bill(services, request, verdict.status, moment)
    store.scans.finish(step.scan_id, finished=datetime.now(UTC), outcome=verdict.status,
                       error=verdict.reason if verdict.status is AssessmentStatus.FAILED else "")
    export_assessment(lambda: store.images.get(request.registry, request.repository,
                                               request.digest), verdict,
                      moment, identity_uploader(store.clients.credential))
    # The row read before the save has the tags (the push was recorded when the scan began).
    message = notification(request, verdict, previous, image)
    if message is not None:
        send_notification(services, message)
    log.info("scan %s of %s: %s (%d findings, %d disabled) %s", step.scan_id,
             request.reference, verdict.status.value, verdict.active, verdict.disabled,
             verdict.reason)
    return ScanOutcome(status=verdict.status, reason=verdict.reason, scan_id=step.scan_id,
                       findings=verdict.active, disabled=verdict.disabled, billed=billed,
                       notified=message is not None)


def bill(services: Services, request: ScanRequest, status: AssessmentStatus,
         moment: datetime) -> bool:
    # Failed and not-applicable scans produced no assessment worth paying for.
    if status in (AssessmentStatus.FAILED, AssessmentStatus.NOT_APPLICABLE):
        return False
    result = services.store.billing.bill_first_scan(
        registry=request.registry, repository=request.repository, digest=request.digest,
        trigger=request.trigger, at=moment)
    return result.created


def record_outcome(services: Services, step: ScanStep, verdict: Verdict) -> ScanOutcome:
    """End a scan without inventories: not applicable, unsupported, or failed with a reason."""
    request, scan_id = step.request, step.scan_id
    status, reason = verdict.status, verdict.reason
    moment = datetime.now(UTC)
    services.store.save_assessment(request.registry, request.repository, request.digest,
                                   Assessment(
        status=status, analysis_status=status, assessed_at=moment, reason=reason,
        analyzer_version=analyzer_set_version(), scan_id=scan_id, trigger=request.trigger,
    ))
    billed = bill(services, request, status, moment)
    try:
        services.store.scans.finish(scan_id, finished=moment, outcome=status, error=reason)
    except NotFound:
        services.store.scans.start(registry=request.registry, repository=request.repository,
                                   digest=request.digest, trigger=request.trigger,
                                   started=parse_time(request.requested_at), scan_id=scan_id)
        services.store.scans.finish(scan_id, finished=moment, outcome=status, error=reason)
    log.info("scan %s of %s: %s %s", scan_id, request.reference, status.value, reason)
    return ScanOutcome(status=status, reason=reason, scan_id=scan_id, billed=billed)


def record_delete(services: Services, event: RegistryEvent) -> bool:
    """A manifest deleted from a repository: mark that repository's image deleted (its
    rescans stop; its history stays; the digest in other repositories is untouched)."""
    try:
        services.store.images.mark_deleted(event.registry, event.repository, event.digest,
                                           parse_time(event.time))
    except NotFound:
        log.info("delete of %s@%s: image never seen", event.repository, event.digest)
        return False
    return True


def record_pulls(services: Services, events: Iterable[RegistryEvent]) -> int:
    """Add pulls of image manifests to the ledger (the scanner's own pulls never count)."""
    recorded = 0
    for event in events:
        pull = pull_from_event(event)
        if pull is None:
            continue
        services.store.record_pull(registry=pull.registry, repository=pull.repository,
                                   digest=pull.digest, at=pull.time, count=pull.count)
        recorded += 1
    return recorded
