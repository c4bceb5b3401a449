"""The results API's HTTP functions (``/api/images``, ``findings``, ``scans``, ``rescans``,
``rules``, ``billing``): parse the request, call one handler of ``scanning.api``, return its JSON.

Every route needs a function key (``AuthLevel.FUNCTION``), except with Entra ID on
(``API_ENTRA_AUTH=true``): App Service Authentication then validates Entra access tokens in front
of the app, and since the Functions host knows only its own keys, the routes are anonymous to it
and the app lets a request in when it carries the principal App Service sets or a key listed in
``API_KEYS`` (``refusal``). The setting is read when the app is indexed: the routes' auth level
depends on it. The routes are documented in ``openapi.yaml`` and the README; the behaviour and
its tests live in ``scanning.api``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from scanning import api
from scanning.functions.events import start_forced_scan, start_scan_once
from scanning.principal import api_caller, entra_auth_enabled
from scanning.store import Store

log = logging.getLogger(__name__)

bp = df.Blueprint()

ENTRA = entra_auth_enabled()
AUTH = func.AuthLevel.ANONYMOUS if ENTRA else func.AuthLevel.FUNCTION

_store_lock = threading.Lock()
_stores: list[Store] = []


def store() -> Store:
    """The app's store, built from the settings and its tables created once per worker."""
    with _store_lock:
        if not _stores:
            created = Store.from_settings()
            created.create()
            _stores.append(created)
        return _stores[0]


def forget_store() -> None:
    """Forget the built store (see ``context.forget_services``); waits for a build in
    progress."""
    with _store_lock:
        _stores.clear()


def now() -> datetime:
    return datetime.now(UTC)


def fetch_manifest(request: api.ManualScanRequest) -> tuple[str, str]:
    """The registry lookup ``POST scans`` uses (a seam for tests)."""
    return api.fetch_manifest_identity(request)


def http_response(response: api.ApiResponse) -> func.HttpResponse:
    headers = dict(response.headers)
    if response.body is None:
        return func.HttpResponse(status_code=response.status, headers=headers)
    return func.HttpResponse(json.dumps(response.body, indent=2), status_code=response.status,
                             headers=headers, mimetype="application/json")


def refusal(req: func.HttpRequest, *, entra: bool) -> func.HttpResponse | None:
    """The 401 for a caller the app must check itself (``entra``: the route is anonymous to
    the host) and cannot name; None when the request may go on."""
    if not entra:
        return None
    caller = api_caller(dict(req.headers), dict(req.params))
    if caller is None:
        return http_response(api.ApiResponse(status=401, body=api.error_body(
            "Unauthorized", "an Entra ID access token for this app, or a key API_KEYS lists, "
            "is required")))
    log.info("API call %s %s by %s", req.method, req.url.split("?", 1)[0], caller)
    return None


def answer(req: func.HttpRequest, handler: Callable[[], api.ApiResponse], *,
           entra: bool | None = None) -> func.HttpResponse:
    """The handler's response once the caller is let in (``entra``: whether the app checks
    callers itself; by default this module's ``ENTRA``)."""
    refused = refusal(req, entra=ENTRA if entra is None else entra)
    return refused if refused is not None else http_response(api.respond(handler))


def _query(req: func.HttpRequest) -> dict[str, str]:
    return dict(req.params)


def _route(req: func.HttpRequest, name: str) -> str:
    return str(req.route_params.get(name, ""))


@bp.route(route="api/images", methods=["GET"], auth_level=AUTH)
def api_list_images(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.list_images(store(), _query(req), req.url))


@bp.route(route="api/images/{digest}", methods=["GET"], auth_level=AUTH)
def api_get_image(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.get_image(store(), _route(req, "digest"), _query(req), now()))


@bp.route(route="api/findings", methods=["GET"], auth_level=AUTH)
def api_query_findings(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.query_findings(store(), _query(req), now(), req.url))


@bp.route(route="api/scans", methods=["GET"], auth_level=AUTH)
def api_list_scans(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.list_scans(store(), _query(req), req.url))


@bp.route(route="api/scans", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def api_start_scan(req: func.HttpRequest,
                         client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Scan ``{"image": "<registry>/<repository>[:tag][@digest]"}``: 202 and status URLs.
    With ``"force": true`` an image scanned already is scanned again, as a new scan."""
    refused = refusal(req, entra=ENTRA)
    if refused is not None:
        return refused
    try:
        request = api.scan_request(req.get_body())
        moment = now()
        # Resolving the tag is a blocking registry call: keep it off the event loop.
        event = await asyncio.to_thread(api.scan_event, request, moment, fetch_manifest)
        if request.force:
            instance_id = await start_forced_scan(client, event, moment)
        else:
            instance_id = await start_scan_once(client, event)
    except Exception as error:  # every failure is an API error response, never a crash
        return http_response(api.error_response(error))
    log.info("scan %s requested for %s/%s@%s", instance_id, event.registry, event.repository,
             event.digest)
    return client.create_check_status_response(req, instance_id)


@bp.route(route="api/scans/{id}", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def api_get_scan(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A scan history record (its id has the history format) or an orchestration's status."""
    refused = refusal(req, entra=ENTRA)
    if refused is not None:
        return refused
    scan_id = _route(req, "id")
    if api.is_scan_record_id(scan_id):
        return http_response(api.respond(lambda: api.get_scan_record(store(), scan_id)))
    try:
        status = await client.get_status(api.check_instance_id(scan_id))
    except Exception as error:
        return http_response(api.error_response(error))
    if status is None or status.runtime_status is None:
        return http_response(api.ApiResponse(status=404, body=api.error_body(
            "NotFound", f"no scan {scan_id}")))
    return http_response(api.respond(lambda: api.ApiResponse(
        status=200, body=api.orchestration_status_json(status))))


@bp.route(route="api/rescans/{id}", methods=["GET"], auth_level=AUTH)
def api_get_rescan(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.get_rescan(store(), _route(req, "id")))


@bp.route(route="api/rules", methods=["GET"], auth_level=AUTH)
def api_list_rules(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.list_rules(store(), _query(req), now(), req.url))


@bp.route(route="api/rules", methods=["POST"], auth_level=AUTH)
def api_create_rules(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.create_rules(store(), req.get_body(),
                                           req.headers.get("content-type", ""), now()))


@bp.route(route="api/rules/{id}", methods=["DELETE"], auth_level=AUTH)
def api_delete_rule(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.delete_rule(store(), _route(req, "id"), now()))


@bp.route(route="api/billing", methods=["GET"], auth_level=AUTH)
def api_billing(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, lambda: api.billing(store(), _query(req), now(), req.url))
