"""The local host serves HTTP functions from the app's own definitions, with the key check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

import function_app
from scanning.errors import ConfigError
from scanning.local.host import APP_HOST_JSON, FunctionHost, route_prefix_of
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, request

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="repos/{name}/items/{item_id:int}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"route": dict(req.route_params),
                                         "query": {"q": req.params.get("q")}}),
                             mimetype="application/json")


@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_route(req: func.HttpRequest) -> str:
    return "open"


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=201,
                             headers={"X-Method": req.method})


@app.route(route="broken", methods=["GET"])
def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@pytest.fixture(scope="module")
def host() -> Iterator[FunctionHost]:
    server = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0)
    server.start()
    yield server
    server.stop()


def test_route_parameters_and_query_reach_the_function(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/api/repos/library/items/42?q=x",
                           headers={"x-functions-key": FUNCTION_KEY})
    assert (status, json.loads(body)) == (
        200, {"route": {"name": "library", "item_id": "42"}, "query": {"q": "x"}})


def test_key_in_code_query_parameter_is_accepted(host: FunctionHost) -> None:
    status, _ = request(f"{host.base_url}/api/repos/a/items/1?code={FUNCTION_KEY}")
    assert status == 200


NO_KEY = {"error": {"code": "Unauthorized", "message": "a function key is required "
                   "(x-functions-key header or code parameter)"}}


def test_missing_key_is_401(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/api/repos/a/items/1")
    assert (status, json.loads(body)) == (401, NO_KEY)


def test_wrong_key_is_401(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/api/repos/a/items/1",
                           headers={"x-functions-key": "wrong"})
    assert (status, json.loads(body)) == (401, NO_KEY)


def test_anonymous_route_needs_no_key(host: FunctionHost) -> None:
    assert request(f"{host.base_url}/api/open") == (200, b"open")


def test_route_constraint_mismatch_is_404(host: FunctionHost) -> None:
    status, _ = request(f"{host.base_url}/api/repos/a/items/abc",
                        headers={"x-functions-key": FUNCTION_KEY})
    assert status == 404


def test_wrong_method_is_405(host: FunctionHost) -> None:
    status, _ = request(f"{host.base_url}/api/echo", headers={"x-functions-key": FUNCTION_KEY})
    assert status == 405


def test_body_status_and_headers_round_trip(host: FunctionHost) -> None:
    prepared_headers = {"x-functions-key": FUNCTION_KEY}
    status, body = request(f"{host.base_url}/api/echo", method="POST",
                           headers=prepared_headers, body=b"hello")
    assert (status, body) == (201, b"hello")


def test_function_exception_is_500(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/api/broken",
                           headers={"x-functions-key": FUNCTION_KEY})
    assert (status, json.loads(body)) == (500, {"error": {
        "code": "InternalServerError", "message": "the request failed; see the host's log"}})


def test_unknown_route_is_404(host: FunctionHost) -> None:
    assert request(f"{host.base_url}/api/nothing-here",
                   headers={"x-functions-key": FUNCTION_KEY})[0] == 404


def test_host_json_route_prefix_is_read_and_defaults_to_api(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text('{"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}')
    silent = tmp_path / "silent.json"
    silent.write_text('{"version": "2.0"}')
    assert (route_prefix_of(empty), route_prefix_of(silent), route_prefix_of(APP_HOST_JSON)) \
        == ("", "api", "")


def test_a_host_json_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "host.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        route_prefix_of(broken)


@pytest.fixture(scope="module")
def app_host() -> Iterator[FunctionHost]:
    """The real app with its own host.json: API under /api/, the dashboard at the root."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_KEY", "dashboard-key")
        server = FunctionHost(function_app.app, function_key=FUNCTION_KEY,
                              registry_token=REGISTRY_TOKEN, port=0, run_timers=False,
                              route_prefix=route_prefix_of(APP_HOST_JSON))
        server.start()
        yield server
        server.stop()


def test_the_root_is_the_dashboard_sign_in(app_host: FunctionHost) -> None:
    response = app_host.handle("GET", "/", {}, b"")
    assert (response.status, dict(response.headers)["Content-Type"],
            b"<h1>Sign in</h1>" in response.body) == (401, "text/html; charset=utf-8", True)


def test_the_code_parameter_at_the_root_signs_in(app_host: FunctionHost) -> None:
    response = app_host.handle("GET", "/?code=dashboard-key", {}, b"")
    assert (response.status, dict(response.headers)["Location"]) == (303, "/")


def test_an_api_path_no_function_serves_is_a_json_404(app_host: FunctionHost) -> None:
    response = app_host.handle("GET", "/api/nothing-here", {}, b"")
    assert (response.status, json.loads(response.body)) == (404, {"error": {
        "code": "NotFound", "message": "no API function serves GET /api/nothing-here"}})


def test_api_routes_and_host_endpoints_keep_their_paths(app_host: FunctionHost) -> None:
    health = app_host.handle("GET", "/api/health", {}, b"")
    status = app_host.handle("GET", "/admin/host/status", {}, b"")
    assert (health.status, json.loads(health.body), status.status) == (
        200, {"status": "ok"}, 401)
    urls = {entry["name"]: entry["url"] for entry in app_host.describe()["functions"]
            if "url" in entry}
    assert (urls["health"], urls["dashboard"]) == (f"{app_host.base_url}/api/health",
                                                   f"{app_host.base_url}/{{*path}}")
