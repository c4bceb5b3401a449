"""Registry events in: the Event Grid trigger that starts one scan per pushed image."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

import azure.durable_functions as df
import azure.functions as func

from scanning.events import RegistryEvent, normalise
from scanning.model import ScanState, ScanTrigger
from scanning.service.context import services
from scanning.service.payloads import ScanRequest, request_from_event
from scanning.service.scan import record_delete, record_push

log = logging.getLogger(__name__)

bp = df.Blueprint()

SCAN_ORCHESTRATOR = "scan_image"
# A scan in one of these states is not started again: delivery is at least once, and Durable
# Functions would otherwise overwrite a completed instance that has the same id.
_STARTED = (
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.ContinuedAsNew,
)


def scan_instance_id(event: RegistryEvent | ScanRequest, purpose: str = "") -> str:
    """One first-scan instance per image, that is per repository and digest: sha256 of
    ``registry/repository@digest`` (hex). A digest pushed to a second repository is a second
    image and gets its own scan (which reuses the layer cache: nothing is downloaded again).

    Rescans that must re-analyse pass a ``purpose`` (e.g. ``rescan/2026-11-22``) so they get
    an instance of their own.
    """
    key = (f"{event.registry}/{event.repository}@{event.digest}"
           + (f"/{purpose}" if purpose else ""))
    return hashlib.sha256(key.encode()).hexdigest()


def starts_scan(event: RegistryEvent) -> bool:
    """Pushes of manifests and indexes start a scan; deletes and blobs do not."""
    return event.action == "push" and event.is_manifest


def as_event_grid_payload(event: func.EventGridEvent) -> dict[str, object]:
    return {"id": event.id, "eventType": event.event_type, "subject": event.subject,
            "eventTime": event.event_time.isoformat() if event.event_time else "",
            "data": event.get_json()}


async def start_once(client: df.DurableOrchestrationClient, orchestrator: str,
                     instance_id: str, client_input: object,
                     before_start: Callable[[], None] = lambda: None) -> bool:
    """Start ``orchestrator`` as instance ``instance_id`` unless it exists already; True when
    this call started it. ``before_start`` runs just before starting it."""
    status = await client.get_status(instance_id)
    if status.runtime_status in _STARTED:
        log.info("%s %s already %s", orchestrator, instance_id, status.runtime_status)
        return False
    before_start()
    await client.start_new(orchestrator, instance_id, client_input)
    return True


def mark_queued(request: ScanRequest) -> None:
    """Show the image as ``queued`` until its scan runs. Written before the orchestration
    starts, so it can never land after the scan's own ``scanning`` or its assessment. An
    untagged push may be a platform of an index about to be pushed: it gets no image row
    unless its own scan runs."""
    if not request.may_be_index_child:
        record_push(services(), request, ScanState.QUEUED)


async def start_request_once(client: df.DurableOrchestrationClient, request: ScanRequest,
                             instance_id: str) -> bool:
    """Start ``scan_image`` for ``request`` unless instance ``instance_id`` exists already
    (the image shows ``queued`` meanwhile); True when this call started it."""
    return await start_once(client, SCAN_ORCHESTRATOR, instance_id, request.to_json(),
                            lambda: mark_queued(request))


async def start_scan_once(client: df.DurableOrchestrationClient, event: RegistryEvent) -> str:
    """Start the first scan of the event's image unless one exists; its instance id.

    A tagged push of a digest already scanned (or being scanned) still records the push: a
    new tag on known content is not a new scan, but the image's tags must show it. Untagged
    pushes add nothing to record (and the children of an index have no image row of their own).
    """
    request = request_from_event(event)
    instance_id = scan_instance_id(event)
    started = await start_request_once(client, request, instance_id)
    if not started and request.tag and request.trigger in (ScanTrigger.PUSH, ScanTrigger.IMPORT):
        record_push(services(), request)
    return instance_id


async def start_forced_scan(client: df.DurableOrchestrationClient, event: RegistryEvent,
                            moment: datetime) -> str:
    """Start a scan of the event's image even when it was scanned already (``POST scans`` with
    ``force``): an instance of its own per request time, so the first scan's instance is not
    replaced. It runs the whole scan again (resolve, inventories, match, verdict), reusing the
    layer cache; billing is once per digest, so it is not billed again."""
    instance_id = scan_instance_id(event, purpose=f"force/{moment.isoformat()}")
    await start_request_once(client, request_from_event(event), instance_id)
    return instance_id


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_registry_event(event: func.EventGridEvent,
                            client: df.DurableOrchestrationClient) -> None:
    for registry_event in normalise(as_event_grid_payload(event)):
        log.info("registry event %s %s/%s@%s tag=%r", registry_event.action,
                 registry_event.registry, registry_event.repository, registry_event.digest,
                 registry_event.tag)
        if starts_scan(registry_event):
            await start_scan_once(client, registry_event)
        elif registry_event.action == "delete" and registry_event.digest:
            record_delete(services(), registry_event)
