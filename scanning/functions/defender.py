"""Defender's results API routes (``scanning.defender_api``), shaped as ARM serves them.

Authentication: locally, and in Azure unless ``API_ENTRA_AUTH`` is on, the routes need a
function key like the rest of the API. With it on, App Service Authentication validates an
Entra access token in front of the app and the routes are anonymous to the Functions host
(which knows only keys); each request must then carry the principal App Service sets, or it
is a 401. The setting is read when the app is indexed: the route's auth level depends on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.durable_functions as df
import azure.functions as func

from scanning import api, defender_api
from scanning.defender import RegistryIds, registry_resource_id
from scanning.functions.api import answer, http_response, now, store
from scanning.principal import entra_auth_enabled, principal_id

log = logging.getLogger(__name__)

bp = df.Blueprint()

ENTRA = entra_auth_enabled()
AUTH = func.AuthLevel.ANONYMOUS if ENTRA else func.AuthLevel.FUNCTION
_REGISTRY = ("api/subscriptions/{subscription}/resourceGroups/{group}/providers/"
             "Microsoft.ContainerRegistry/registries/{registry}/providers/Microsoft.Security/"
             "assessments/{key}")


def _authorized(req: func.HttpRequest,
                handler: Callable[[], api.ApiResponse]) -> func.HttpResponse:
    if ENTRA:
        caller = principal_id(dict(req.headers))
        if caller is None:
            return http_response(api.ApiResponse(status=401, body=api.error_body(
                "Unauthorized", "an Entra ID access token for this app is required")))
        log.info("Defender API call by %s", caller)
    return answer(handler)


def _registry_scope(req: func.HttpRequest) -> defender_api.Scope:
    route = req.route_params
    subscription = str(route.get("subscription", ""))
    return defender_api.Scope(
        ids=RegistryIds.from_settings(), subscription=subscription,
        registry_id=registry_resource_id(subscription, str(route.get("group", "")),
                                         str(route.get("registry", ""))))


@bp.route(route=f"{_REGISTRY}/subAssessments", methods=["GET"], auth_level=AUTH)
def defender_list_sub_assessments(req: func.HttpRequest) -> func.HttpResponse:
    return _authorized(req, lambda: defender_api.list_sub_assessments(
        store(), _registry_scope(req), str(req.route_params.get("key", "")), dict(req.params),
        now(), req.url))


@bp.route(route=f"{_REGISTRY}/subAssessments/{{name}}", methods=["GET"], auth_level=AUTH)
def defender_get_sub_assessment(req: func.HttpRequest) -> func.HttpResponse:
    return _authorized(req, lambda: defender_api.get_sub_assessment(
        store(), _registry_scope(req), str(req.route_params.get("key", "")),
        str(req.route_params.get("name", "")), dict(req.params), now()))


@bp.route(route=_REGISTRY, methods=["GET"], auth_level=AUTH)
def defender_get_assessment(req: func.HttpRequest) -> func.HttpResponse:
    return _authorized(req, lambda: defender_api.get_assessment(
        store(), _registry_scope(req), str(req.route_params.get("key", "")),
        dict(req.params)))


@bp.route(route="api/subscriptions/{subscription}/providers/Microsoft.Security/subAssessments",
          methods=["GET"], auth_level=AUTH)
def defender_list_subscription_sub_assessments(req: func.HttpRequest) -> func.HttpResponse:
    return _authorized(req, lambda: defender_api.list_sub_assessments(
        store(), defender_api.Scope(ids=RegistryIds.from_settings(), subscription=str(
            req.route_params.get("subscription", ""))), "", dict(req.params), now(), req.url))
