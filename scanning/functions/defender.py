"""Defender's results API routes (``scanning.defender_api``), shaped as ARM serves them.

Authentication: as the rest of the API (``scanning.functions.api``): a function key, or with
``API_ENTRA_AUTH`` on, the principal App Service sets or a key ``API_KEYS`` lists (else a 401).
"""

from __future__ import annotations

from collections.abc import Callable

import azure.durable_functions as df
import azure.functions as func

from scanning import api, defender_api
from scanning.defender import RegistryIds, registry_resource_id
from scanning.functions.api import answer, now, store
from scanning.principal import entra_auth_enabled

bp = df.Blueprint()

ENTRA = entra_auth_enabled()
AUTH = func.AuthLevel.ANONYMOUS if ENTRA else func.AuthLevel.FUNCTION
_REGISTRY = ("api/subscriptions/{subscription}/resourceGroups/{group}/providers/"
             "Microsoft.ContainerRegistry/registries/{registry}/providers/Microsoft.Security/"
             "assessments/{key}")


def _authorized(req: func.HttpRequest,
                handler: Callable[[], api.ApiResponse]) -> func.HttpResponse:
    return answer(req, handler, entra=ENTRA)


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
