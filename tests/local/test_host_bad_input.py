"""Bad input to the local host's own endpoints (Durable instance API, registry notifications,
request framing, route constraints) is a 4xx with a JSON message, never a 500."""

from __future__ import annotations

import http.client
import json
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import quote

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning.local.host import FunctionHost
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, request

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

INSTANCES = "/runtime/webhooks/durabletask/instances"
KEY = {"x-functions-key": FUNCTION_KEY}


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    approval = yield context.wait_for_external_event("approval")
    return approval


@app.route(route="items/{item_id:int}/{tag:guid}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    server = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0,
                          run_timers=False)
    server.start()
    yield server
    server.stop()


def _raise_event(host: FunctionHost, instance_id: str, body: bytes,
                 name: str = "approval") -> tuple[int, Any]:
    status, raw = request(f"{host.base_url}{INSTANCES}/{instance_id}/raiseEvent/{name}",
                          method="POST", headers=KEY, body=body)
    return status, json.loads(raw) if raw else None


def _bad_request(message: str) -> dict[str, Any]:
    return {"error": {"code": "BadRequest", "message": message}}


def test_raised_event_with_json_data_reaches_the_orchestration(host: FunctionHost) -> None:
    host.durable.start("waits", "approve", None)
    status, _ = _raise_event(host, "approve", b'{"ok": true}')
    instance = host.durable.wait("approve", timeout=20)
    assert (status, instance.status.value, instance.output) == (202, "Completed", {"ok": True})


def test_raised_event_that_is_not_json_is_400(host: FunctionHost) -> None:
    host.durable.start("waits", "garbled", None)
    assert _raise_event(host, "garbled", b"{not json") == (400, _bad_request(
        "the request body is not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"))


def test_raised_event_with_a_5000_digit_integer_is_400(host: FunctionHost) -> None:
    host.durable.start("waits", "huge", None)
    assert _raise_event(host, "huge", b"1" * 5000) == (400, _bad_request(
        "the request body has a 5000-digit integer; integers may have at most 19 digits"))


def test_raised_event_nested_too_deeply_is_400(host: FunctionHost) -> None:
    host.durable.start("waits", "deep", None)
    assert _raise_event(host, "deep", b"[" * 100_000 + b"]" * 100_000) == (
        400, _bad_request("the request body is nested too deeply"))


def test_raised_event_for_an_unknown_instance_is_404(host: FunctionHost) -> None:
    assert _raise_event(host, "nobody", b"1") == (404, {"error": {
        "code": "NotFound", "message": "no orchestration instance 'nobody'"}})


def test_status_of_an_unknown_instance_is_404_with_a_message(host: FunctionHost) -> None:
    status, raw = request(f"{host.base_url}{INSTANCES}/nobody", headers=KEY)
    assert (status, json.loads(raw)) == (404, {"error": {
        "code": "NotFound", "message": "no orchestration instance 'nobody'"}})


def test_registry_notification_with_a_5000_digit_integer_is_400(host: FunctionHost) -> None:
    status, raw = request(host.registry_events_url, method="POST",
                          headers={"Authorization": f"Bearer {REGISTRY_TOKEN}"},
                          body=b'{"events": [], "n": ' + b"9" * 5000 + b"}")
    assert (status, json.loads(raw)) == (400, _bad_request(
        "the request body has a 5000-digit integer; integers may have at most 19 digits"))


def test_content_length_in_full_width_digits_is_400(host: FunctionHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    try:
        connection.putrequest("POST", "/registry-events")
        connection.putheader("Content-Length", "\uff12".encode())  # a full-width 2
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (400, _bad_request(
            "Content-Length must be a decimal number"))
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "items/\uff14\uff12/6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # full-width 42
    "items/4_2/6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "items/42/\uff16ba7b810-9dad-11d1-80b4-00c04fd430c8",  # a full-width 6 in the guid
])
def test_route_constraints_take_only_ascii_digits(host: FunctionHost, path: str) -> None:
    status, raw = request(f"{host.base_url}/api/{quote(path)}", headers=KEY)
    assert (status, json.loads(raw)["error"]["code"]) == (404, "NotFound")


def test_route_constraints_take_ascii_digits(host: FunctionHost) -> None:
    status, raw = request(
        f"{host.base_url}/api/items/42/6ba7b810-9dad-11d1-80b4-00c04fd430c8", headers=KEY)
    assert (status, json.loads(raw)) == (
        200, {"item_id": "42", "tag": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"})
