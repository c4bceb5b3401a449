"""Periodic jobs besides the weekly rescan: catch-up of images no event announced, the daily
advisory refresh, and (in Azure) the pull sync from the registry's resource logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanning.advisories.index import content_fingerprint, key_fingerprints, write_index
from scanning.advisories.refresh import download_and_compile, update_ecosystems
from scanning.config import int_setting, setting
from scanning.errors import NotFound, ScanError
from scanning.fleet import fleet_registries
from scanning.model import ScanTrigger
from scanning.service.context import Services
from scanning.service.payloads import ScanRequest
from scanning.service.scan import parent_index
from scanning.store.advisory_index import publish_index
from scanning.store.blobs import BlobKind

log = logging.getLogger(__name__)

PULL_SYNC_MARKER = "log-analytics-sync"


def _names(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in setting(name).split(",") if part.strip())


def configured_registries() -> tuple[str, ...]:
    """``REGISTRIES``, then the registries of the subscriptions in ``SUBSCRIPTION_IDS``
    listed from ARM with the app's identity."""
    subscriptions = _names("SUBSCRIPTION_IDS")
    if not subscriptions:
        return _names("REGISTRIES")
    from azure.identity import DefaultAzureCredential

    return fleet_registries(_names("REGISTRIES"), subscriptions, DefaultAzureCredential())


def catch_up(services: Services, registries: Iterable[str] | None = None, *,
             now: datetime | None = None) -> tuple[ScanRequest, ...]:
    """Images in the registries that have no assessment: a missed event never means never
    scanned. Returns the scans to start (trigger ``catchup``)."""
    from scanning.registry.catalog import list_registry_images

    moment = now or datetime.now(UTC)
    requests: list[ScanRequest] = []
    for registry in registries if registries is not None else configured_registries():
        for image in list_registry_images(registry):
            record = services.store.images.find(registry, image.repository, image.digest)
            if record is not None and (record.status is not None or record.deleted):
                continue
            if parent_index(services, registry, image.digest):
                continue
            requests.append(ScanRequest(
                registry=registry, repository=image.repository, digest=image.digest,
                tag=image.tags[0] if image.tags else "", media_type=image.media_type,
                trigger=ScanTrigger.CATCHUP, requested_at=moment.isoformat()))
    log.info("catch-up found %d images without an assessment", len(requests))
    return tuple(requests)


def refresh_advisories(services: Services, workdir: Path) -> str:
    """Download the feeds, compile and publish the index when its content changed; the
    published index's version, or "" when nothing was published (the content is today's).

    A failed download raises before anything is published: the previous index stays.
    """
    index = download_and_compile(workdir, update_ecosystems([]))
    if index.rejected:
        log.warning("advisory refresh: %d records rejected (first: %s: %s)",
                    len(index.rejected), index.rejected[0]["id"], index.rejected[0]["reason"])
    try:
        current, current_version = services.index.get()
        previous = content_fingerprint(services.index.key_fingerprints(current, current_version))
    except ScanError:
        previous = ""
    if previous == content_fingerprint(key_fingerprints(index)):
        log.info("advisory index unchanged (%d advisories)", len(index.advisories))
        return ""
    path = workdir / "index.idx"
    write_index(index, path)
    published = publish_index(services.store.clients.blob_service(), path)
    services.index.invalidate()
    return published.version


def sync_pulls_from_log_analytics(services: Services, *, now: datetime | None = None) -> int:
    """Azure: copy pulls from the registry's resource logs into the ledger.

    Only rows newer than the previous sync are read, so no pull is counted twice.
    """
    from azure.identity import DefaultAzureCredential

    from scanning.pulls import query_log_analytics

    workspace = setting("LOG_ANALYTICS_WORKSPACE_ID")
    if not workspace:
        return 0
    moment = now or datetime.now(UTC)
    blobs = services.store.blobs
    try:
        last = datetime.fromisoformat(blobs.get(BlobKind.MARKERS, PULL_SYNC_MARKER).decode())
    except NotFound:
        last = moment - timedelta(days=int_setting("PULL_WINDOW_DAYS"))
    records = query_log_analytics(workspace, (last, moment), DefaultAzureCredential())
    for record in records:
        services.store.record_pull(registry=record.registry, repository=record.repository,
                                   digest=record.digest, at=record.time, count=record.count)
    blobs.put(BlobKind.MARKERS, PULL_SYNC_MARKER, moment.isoformat().encode(),
              content_type="text/plain")
    return len(records)
