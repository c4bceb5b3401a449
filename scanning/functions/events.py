"""Registry events in: the Event Grid trigger that starts a scan per pushed image."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict

import azure.durable_functions as df
import azure.functions as func

from scanning.events import RegistryEvent, normalise

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


def scan_instance_id(event: RegistryEvent) -> str:
    """One orchestration instance per image: sha256 of ``registry/digest``, hex."""
    return hashlib.sha256(f"{event.registry}/{event.digest}".encode()).hexdigest()


def starts_scan(event: RegistryEvent) -> bool:
    """Pushes of manifests and indexes start a scan; deletes and blobs do not."""
    return event.action == "push" and event.is_manifest


def as_event_grid_payload(event: func.EventGridEvent) -> dict[str, object]:
    return {"id": event.id, "eventType": event.event_type, "subject": event.subject,
            "eventTime": event.event_time.isoformat() if event.event_time else "",
            "data": event.get_json()}


async def start_scan_once(client: df.DurableOrchestrationClient, event: RegistryEvent) -> str:
    """Start ``scan_image`` for the event's image unless a scan of it exists; its id."""
    instance_id = scan_instance_id(event)
    status = await client.get_status(instance_id)
    if status.runtime_status in _STARTED:
        log.info("scan %s of %s already %s", instance_id, event.digest, status.runtime_status)
    else:
        await client.start_new(SCAN_ORCHESTRATOR, instance_id, asdict(event))
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
