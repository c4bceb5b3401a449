"""The HTTP API: health, received events, scan status."""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from scanning.errors import BadRequest
from scanning.events import normalise
from scanning.functions import eventlog
from scanning.functions.events import start_scan_once

bp = df.Blueprint()


def _json(value: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value, indent=2), status_code=status_code,
                             mimetype="application/json")


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"status": "ok"})


@bp.route(route="events", methods=["GET"])
def list_events(req: func.HttpRequest) -> func.HttpResponse:
    return _json(eventlog.list_events())


@bp.route(route="events/{digest}", methods=["GET"])
def get_events(req: func.HttpRequest) -> func.HttpResponse:
    records = eventlog.list_events(digest=req.route_params["digest"])
    return _json(records) if records else _json({"error": "no such digest"}, 404)


@bp.route(route="scans", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_scan(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a scan from an event in any shape ``normalise`` reads (e.g. an Event Grid event)."""
    try:
        events = [event for event in normalise(req.get_json()) if event.digest]
    except (ValueError, BadRequest) as error:
        return _json({"error": str(error)}, 400)
    if len(events) != 1:
        return _json({"error": "send exactly one event with a digest"}, 400)
    instance_id = await start_scan_once(client, events[0])
    return client.create_check_status_response(req, instance_id)


@bp.route(route="scans/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_scan(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"])
    if status.runtime_status is None:
        return _json({"error": "no such scan"}, 404)
    return _json(status.to_json())
