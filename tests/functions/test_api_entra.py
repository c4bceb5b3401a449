"""The results API with Entra ID on (``API_ENTRA_AUTH=true``): the routes are anonymous to the
Functions host, so the app itself lets in the principal App Service Authentication sets or a key
``API_KEYS`` lists, and refuses everything else with a 401 before touching storage."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning.defender import MDVM_KEY
from scanning.functions import api as api_functions
from scanning.functions import defender
from scanning.local.host import index_app, user_callable
from scanning.principal import api_caller
from scanning.store import Store

OBJECT_ID = "5f0c1b7e-0000-4000-8000-000000000001"
PRINCIPAL = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
    {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
     "val": OBJECT_ID}]}).encode()).decode()
REFUSED = (401, {"error": {"code": "Unauthorized", "message": (
    "an Entra ID access token for this app, or a key API_KEYS lists, is required")}})
EMPTY: dict[str, Any] = {"value": [], "continuationToken": None, "nextLink": None}
KEYS = "first-key-0123456789, second-key-9876543210"


def _index(blueprint: Any) -> Any:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(blueprint)
    return index_app(app)


INDEX = _index(api_functions.bp)


class NoStore:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) for a refused request")


@pytest.fixture()
def entra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_functions, "ENTRA", True)
    monkeypatch.setenv("API_KEYS", KEYS)


def list_rules(headers: dict[str, str], params: dict[str, str] | None = None) -> tuple[int, Any]:
    item = INDEX.get("api_list_rules")
    assert item is not None
    response = user_callable(item)(func.HttpRequest(
        method="GET", url="http://127.0.0.1:7071/api/rules", params=params or {},
        route_params={}, body=b"", headers=headers))
    return response.status_code, json.loads(response.get_body())


@pytest.mark.usefixtures("entra")
@pytest.mark.parametrize(("headers", "params"), [
    ({}, {}),
    ({"x-functions-key": "first-key-012345678"}, {}),  # a prefix of a key
    ({"x-functions-key": "wrong"}, {}),
    ({}, {"code": "second-key-98765432100"}),
    ({"X-MS-CLIENT-PRINCIPAL": "bm90IGpzb24="}, {}),  # base64 of "not json"
], ids=["nothing", "key-prefix", "wrong-key", "longer-key", "malformed-principal"])
def test_without_principal_or_listed_key_is_401_before_storage(
        monkeypatch: pytest.MonkeyPatch, headers: dict[str, str],
        params: dict[str, str]) -> None:
    monkeypatch.setattr(api_functions, "store", NoStore)
    assert list_rules(headers, params) == REFUSED


@pytest.mark.usefixtures("entra", "store")
@pytest.mark.parametrize(("headers", "params"), [
    ({"X-MS-CLIENT-PRINCIPAL": PRINCIPAL}, {}),
    ({"x-functions-key": "first-key-0123456789"}, {}),
    ({"X-Functions-Key": "second-key-9876543210"}, {}),
    ({}, {"code": "second-key-9876543210"}),
], ids=["principal", "header-key", "header-key-any-case", "code-parameter"])
def test_a_principal_or_a_listed_key_reaches_the_handler(
        headers: dict[str, str], params: dict[str, str]) -> None:
    assert list_rules(headers, params) == (200, EMPTY)


def test_with_entra_off_the_app_leaves_keys_to_the_host(
        monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    monkeypatch.setattr(api_functions, "ENTRA", False)
    monkeypatch.delenv("API_KEYS", raising=False)
    assert list_rules({}) == (200, EMPTY)


def test_no_keys_listed_means_only_the_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " , ")
    assert api_caller({"x-functions-key": ""}, {"code": ""}) is None
    assert api_caller({"x-functions-key": "anything"}, {}) is None
    assert api_caller({"x-ms-client-principal": PRINCIPAL}, {}) == OBJECT_ID


def test_defender_routes_take_a_listed_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defender, "ENTRA", True)
    monkeypatch.setenv("API_KEYS", KEYS)
    monkeypatch.setattr(defender, "store", lambda: None)
    item = _index(defender.bp).get("defender_list_sub_assessments")
    assert item is not None
    route = {"subscription": "00000000-0000-0000-0000-000000000000", "group": "local",
             "registry": "local", "key": MDVM_KEY}

    def call(headers: dict[str, str]) -> tuple[int, Any]:
        response = user_callable(item)(func.HttpRequest(
            method="GET", url="http://127.0.0.1/api/x", params={}, route_params=route,
            body=b"", headers=headers))
        return response.status_code, json.loads(response.get_body())

    assert call({}) == REFUSED
    # Past the key check, the missing api-version is the first thing refused.
    assert call({"x-functions-key": "first-key-0123456789"}) == (400, {"error": {
        "code": "BadRequest", "message": "api-version must be 2019-01-01-preview, got ''"}})


def test_entra_setting_makes_every_api_route_anonymous_to_the_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    try:
        reloaded = importlib.reload(api_functions)
        on = {item.auth_level for item in _index(reloaded.bp).functions}
    finally:
        monkeypatch.delenv("API_ENTRA_AUTH")
        importlib.reload(api_functions)
    off = {item.auth_level for item in _index(api_functions.bp).functions}
    assert (on, off) == ({"anonymous"}, {"function"})
