"""The Defender-shaped routes as functions: openapi.yaml documents them, and with Entra ID on
(``API_ENTRA_AUTH``) a request needs the principal App Service Authentication sets."""

from __future__ import annotations

import base64
import importlib
import json
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
import yaml

from scanning.defender import LOCAL_RESOURCE_ID, MDVM_KEY
from scanning.functions import defender
from scanning.local.host import index_app, user_callable

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
APP = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
APP.register_functions(defender.bp)
INDEX = index_app(APP)
ROUTE = {"subscription": "00000000-0000-0000-0000-000000000000", "group": "local",
         "registry": "local", "key": MDVM_KEY}
PRINCIPAL = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
    {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
     "val": "5f0c1b7e-0000-4000-8000-000000000001"}]}).encode()).decode()


def call(headers: dict[str, str]) -> tuple[int, Any]:
    item = INDEX.get("defender_list_sub_assessments")
    assert item is not None
    request = func.HttpRequest(
        method="GET", url=f"http://127.0.0.1/api{LOCAL_RESOURCE_ID}/providers/"
                          f"Microsoft.Security/assessments/{MDVM_KEY}/subAssessments",
        params={}, route_params=ROUTE, body=b"", headers=headers)
    response = user_callable(item)(request)
    return response.status_code, json.loads(response.get_body())


def test_openapi_documents_every_defender_route() -> None:
    paths = yaml.safe_load(OPENAPI.read_text())["paths"]
    documented = sorted(path.lstrip("/") for path in paths if "Microsoft.Security" in path)
    served = sorted(item.route.template.removeprefix("api/") for item in INDEX.functions
                    if item.route is not None)
    assert documented == served


def test_with_entra_on_a_request_without_principal_is_401(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defender, "ENTRA", True)
    assert call({}) == (401, {"error": {
        "code": "Unauthorized",
        "message": "an Entra ID access token for this app, or a key API_KEYS lists, "
                   "is required"}})


def test_with_entra_on_a_principal_reaches_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defender, "ENTRA", True)
    # No store is needed: the missing api-version is refused first, after the principal check.
    monkeypatch.setattr(defender, "store", lambda: None)
    assert call({"X-MS-CLIENT-PRINCIPAL": PRINCIPAL}) == (400, {"error": {
        "code": "BadRequest", "message": "api-version must be 2019-01-01-preview, got ''"}})


def test_entra_setting_makes_the_routes_anonymous_to_the_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    try:
        reloaded = importlib.reload(defender)
        levels = {item.auth_level for item in index_app(_app(reloaded.bp)).functions}
    finally:
        monkeypatch.delenv("API_ENTRA_AUTH")
        importlib.reload(defender)
    assert levels == {"anonymous"}


def _app(blueprint: Any) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(blueprint)
    return app
