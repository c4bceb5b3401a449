"""The results API's HTTP functions called directly with ``func.HttpRequest`` objects.

Routing, parameter and body parsing, status codes and the durable client calls; the data
behind each route is covered by ``tests/test_api.py``. Functions are found the way the local
host finds them (``index_app`` + ``user_callable``), so the decorators' wrapping is real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
import yaml

from scanning import api
from scanning.errors import NotFound
from scanning.functions import api as api_functions
from scanning.functions import events
from scanning.functions.events import scan_instance_id
from scanning.local.durable import DurableRuntime, LocalDurableClient, Orchestrator
from scanning.local.host import index_app, user_callable
from scanning.store import Store

DIGEST = "sha256:" + "a" * 64
OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
BASE = "http://127.0.0.1:7071/api/"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

APP = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
APP.register_functions(api_functions.bp)
INDEX = index_app(APP)


def function(name: str) -> Callable[..., Any]:
    item = INDEX.get(name)
    assert item is not None
    return user_callable(item)


def request(method: str, route: str, *, params: dict[str, str] | None = None,
            route_params: dict[str, str] | None = None, body: bytes = b"",
            headers: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(method=method, url=BASE + route, params=params or {},
                            route_params=route_params or {}, body=body, headers=headers or {})


def call(name: str, req: func.HttpRequest, **kwargs: Any) -> func.HttpResponse:
    result = function(name)(req, **kwargs)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    assert isinstance(result, func.HttpResponse)
    return result


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def bad(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"code": "BadRequest", "message": message}}


class NoStore:
    """Stands in for the store where a request must fail before storage is touched."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) for a request that is invalid")


def _record_input(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return context.get_input()
    yield  # a generator, like every orchestrator


@pytest.fixture()
def runtime() -> Iterator[DurableRuntime]:
    durable = DurableRuntime(
        orchestrators={"scan_image": Orchestrator(name="scan_image", function=_record_input)},
        activities={}, max_workers=1,
        status_url=lambda instance_id: f"http://127.0.0.1:7071/status/{instance_id}")
    yield durable
    durable.close()


def test_every_route_is_a_function_level_http_trigger() -> None:
    assert sorted((item.name, item.route.template if item.route else "",
                   tuple(sorted(item.methods or ())), item.auth_level)
                  for item in INDEX.functions) == [
        ("api_billing", "api/billing", ("GET",), "function"),
        ("api_create_rules", "api/rules", ("POST",), "function"),
        ("api_delete_rule", "api/rules/{id}", ("DELETE",), "function"),
        ("api_get_image", "api/images/{digest}", ("GET",), "function"),
        ("api_get_rescan", "api/rescans/{id}", ("GET",), "function"),
        ("api_get_scan", "api/scans/{id}", ("GET",), "function"),
        ("api_list_images", "api/images", ("GET",), "function"),
        ("api_list_rules", "api/rules", ("GET",), "function"),
        ("api_list_scans", "api/scans", ("GET",), "function"),
        ("api_query_findings", "api/findings", ("GET",), "function"),
        ("api_start_scan", "api/scans", ("POST",), "function"),
    ]


def test_openapi_documents_every_route_and_method() -> None:
    paths = yaml.safe_load(OPENAPI.read_text())["paths"]
    # The Defender-shaped routes: tests/functions/test_defender_functions.py.
    documented = sorted((path.lstrip("/"), method.upper()) for path, operations in paths.items()
                        if "Microsoft.Security" not in path for method in operations)
    # openapi.yaml's server is .../api: its paths are the routes after "api/".
    served = sorted((item.route.template.removeprefix("api/"), method) for item in INDEX.functions
                    if item.route is not None for method in item.methods or ())
    assert documented == served


@pytest.mark.parametrize(("name", "req", "expected"), [
    ("api_list_images", request("GET", "images", params={"pageSize": "5000"}),
     bad("pageSize must be from 1 to 1000, got 5000")),
    ("api_get_image", request("GET", "images/x", route_params={"digest": "x"}),
     bad("digest must be sha256: and 64 lower-case hex digits, got 'x'")),
    ("api_query_findings", request("GET", "findings", params={"severity": "bad"}),
     bad("parameter 'severity' must be one of unknown, negligible, low, medium, high, "
         "critical, got 'bad'")),
    ("api_list_scans", request("GET", "scans", params={"digest": "sha256:1"}),
     bad("digest must be sha256: and 64 lower-case hex digits, got 'sha256:1'")),
    ("api_create_rules", request("POST", "rules", body=b"\x80"),
     bad("the request body is not UTF-8: invalid start byte at byte 0")),
    ("api_delete_rule", request("DELETE", "rules/a%20b", route_params={"id": "a b"}),
     bad("not a rule id: 'a b'")),
    ("api_billing", request("GET", "billing", params={"month": "March"}),
     bad("month must be YYYY-MM, got 'March'")),
    ("api_get_rescan", request("GET", "rescans/..%2Fx", route_params={"id": "../x"}),
     bad("not a rescan id: '../x'")),
])
def test_bad_requests_are_400_before_storage_is_touched(
        monkeypatch: pytest.MonkeyPatch, name: str, req: func.HttpRequest,
        expected: tuple[int, dict[str, Any]]) -> None:
    store = NoStore()
    monkeypatch.setattr(api_functions, "store", lambda: store)
    monkeypatch.setattr(api, "price_from_settings", lambda: (0, "USD"))
    response = call(name, req)
    assert (response.status_code, body(response), response.mimetype) == (
        *expected, "application/json")


def test_storage_failure_is_500_without_details(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Store:
        raise RuntimeError("connection string with AccountKey=secret")

    monkeypatch.setattr(api_functions, "store", broken)
    response = call("api_list_images", request("GET", "images"))
    assert (response.status_code, body(response)) == (500, {"error": {
        "code": "InternalError", "message": "the request failed; see the function app's logs"}})


@pytest.mark.integration
def test_list_images_passes_query_and_url(store: Store) -> None:
    response = call("api_list_images", request("GET", "images", params={"registry": "r.io"}))
    assert (response.status_code, body(response)) == (
        200, {"value": [], "continuationToken": None, "nextLink": None})


@pytest.mark.integration
def test_unknown_image_is_404(store: Store) -> None:
    response = call("api_get_image", request("GET", f"images/{DIGEST}",
                                             route_params={"digest": DIGEST}))
    assert (response.status_code, body(response)) == (
        404, {"error": {"code": "NotFound", "message": f"no image {DIGEST}"}})


@pytest.mark.integration
def test_rule_create_then_delete_by_route(store: Store) -> None:
    rule = {"id": "r1", "justification": "j", "criteria": {"packages": ["zlib"]}}
    created = call("api_create_rules", request("POST", "rules", body=json.dumps(rule).encode(),
                                               headers={"Content-Type": "application/json"}))
    deleted = call("api_delete_rule", request("DELETE", "rules/r1", route_params={"id": "r1"}))
    assert (created.status_code, body(created)["id"], created.headers.get("Location"),
            deleted.status_code, deleted.get_body()) == (201, "r1", "rules/r1", 204, b"")


@pytest.mark.integration
def test_openvex_content_type_selects_the_vex_import(store: Store) -> None:
    document = {"statements": [{"vulnerability": {"name": "CVE-2024-1"},
                                "products": [{"@id": f"pkg:oci/app@{DIGEST}"}],
                                "status": "not_affected",
                                "justification": "component_not_present"}]}
    response = call("api_create_rules", request(
        "POST", "rules", body=json.dumps(document).encode(),
        headers={"Content-Type": "application/vnd.openvex+json; charset=utf-8"}))
    assert (response.status_code, [rule["criteria"] for rule in body(response)["value"]]) == (
        201, [{"vulnerabilityIds": ["CVE-2024-1"], "digest": DIGEST}])


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The images ``POST scans`` marks queued (the store part is ``tests/test_api.py``'s)."""
    marked: list[str] = []
    monkeypatch.setattr(events, "mark_queued", lambda request: marked.append(request.reference))
    return marked


def test_post_scan_starts_scan_image_and_returns_status_urls(
        monkeypatch: pytest.MonkeyPatch, runtime: DurableRuntime, queued: list[str]) -> None:
    monkeypatch.setattr(api_functions, "fetch_manifest",
                        lambda _: (DIGEST, "application/vnd.oci.image.manifest.v1+json"))
    client = LocalDurableClient(runtime)
    response = call("api_start_scan", request("POST", "scans",
                                              body=b'{"image": "r.example/team/app:1.0"}'),
                    client=client)
    expected_id = instance_id_of("r.example", DIGEST)
    instance = runtime.wait(expected_id, timeout=10)
    assert (response.status_code, body(response)["id"], response.headers["Location"],
            instance.input["trigger"], instance.input["digest"],
            instance.input["tag"]) == (
        202, expected_id, f"http://127.0.0.1:7071/status/{expected_id}",
        "manual", DIGEST, "1.0")


def test_post_scan_marks_the_image_queued(
        monkeypatch: pytest.MonkeyPatch, runtime: DurableRuntime, queued: list[str]) -> None:
    monkeypatch.setattr(api_functions, "fetch_manifest",
                        lambda _: (DIGEST, "application/vnd.oci.image.manifest.v1+json"))
    call("api_start_scan", request("POST", "scans", body=b'{"image": "r.example/team/app:1.0"}'),
         client=LocalDurableClient(runtime))
    assert queued == [f"r.example/team/app@{DIGEST}"]


def test_forced_post_scan_starts_a_new_scan_of_a_scanned_image(
        monkeypatch: pytest.MonkeyPatch, runtime: DurableRuntime, queued: list[str]) -> None:
    monkeypatch.setattr(api_functions, "fetch_manifest",
                        lambda _: (DIGEST, "application/vnd.oci.image.manifest.v1+json"))
    monkeypatch.setattr(api_functions, "now", lambda: datetime(2026, 1, 2, tzinfo=UTC))
    client = LocalDurableClient(runtime)
    first = call("api_start_scan", request("POST", "scans",
                                           body=b'{"image": "r.example/team/app:1.0"}'),
                 client=client)
    runtime.wait(body(first)["id"], timeout=10)
    forced = call("api_start_scan", request(
        "POST", "scans", body=b'{"image": "r.example/team/app:1.0", "force": true}'),
        client=client)
    event = api.ManualScanRequest(registry="r.example", repository="team/app", tag="",
                                  digest=DIGEST).event(DIGEST, "", EPOCH)
    expected = scan_instance_id(event, purpose="force/2026-01-02T00:00:00+00:00")
    instance = runtime.wait(expected, timeout=10)
    assert (forced.status_code, body(forced)["id"], instance.input["trigger"],
            sorted(item.instance_id for item in runtime.instances())) == (
        202, expected, "manual", sorted([body(first)["id"], expected]))


def instance_id_of(registry: str, digest: str) -> str:
    event = api.ManualScanRequest(registry=registry, repository="team/app", tag="",
                                  digest=digest).event(digest, "", EPOCH)
    return scan_instance_id(event)


def test_post_scan_with_bad_body_is_400_and_starts_nothing(runtime: DurableRuntime) -> None:
    response = call("api_start_scan", request("POST", "scans", body=b'{"image": ""}'),
                    client=LocalDurableClient(runtime))
    assert ((response.status_code, body(response)), runtime.instances()) == (
        bad("image must be a non-empty string"), [])


def test_post_scan_of_missing_tag_is_404(monkeypatch: pytest.MonkeyPatch,
                                         runtime: DurableRuntime) -> None:
    def missing(_: api.ManualScanRequest) -> tuple[str, str]:
        raise NotFound("r.example/team/app: manifest 9.9 not found")

    monkeypatch.setattr(api_functions, "fetch_manifest", missing)
    response = call("api_start_scan", request("POST", "scans",
                                              body=b'{"image": "r.example/team/app:9.9"}'),
                    client=LocalDurableClient(runtime))
    assert (response.status_code, body(response)) == (404, {"error": {
        "code": "NotFound", "message": "r.example/team/app: manifest 9.9 not found"}})


def test_get_scan_returns_the_orchestration_status(runtime: DurableRuntime) -> None:
    runtime.start("scan_image", "abc123", {"digest": DIGEST})
    runtime.wait("abc123", timeout=10)
    response = call("api_get_scan", request("GET", "scans/abc123", route_params={"id": "abc123"}),
                    client=LocalDurableClient(runtime))
    status = body(response)
    assert (response.status_code, status["instanceId"], status["runtimeStatus"],
            status["output"]) == (200, "abc123", "Completed", {"digest": DIGEST})


def test_get_unknown_scan_is_404(runtime: DurableRuntime) -> None:
    response = call("api_get_scan", request("GET", "scans/nope", route_params={"id": "nope"}),
                    client=LocalDurableClient(runtime))
    assert (response.status_code, body(response)) == (
        404, {"error": {"code": "NotFound", "message": "no scan nope"}})


@pytest.mark.integration
def test_get_scan_with_a_history_id_reads_the_history(store: Store,
                                                      runtime: DurableRuntime) -> None:
    scan_id = "20250301T120000000000Z-0123abcd"
    response = call("api_get_scan", request("GET", f"scans/{scan_id}",
                                            route_params={"id": scan_id}),
                    client=LocalDurableClient(runtime))
    assert (response.status_code, body(response)) == (
        404, {"error": {"code": "NotFound", "message": f"no scan {scan_id}"}})


def test_input_is_the_push_event_as_a_dict() -> None:
    request_ = api.ManualScanRequest(registry="r.example", repository="team/app", tag="1.0",
                                     digest="")
    assert asdict(request_.event(DIGEST, "m", EPOCH)) == {
        "action": "push", "registry": "r.example", "repository": "team/app", "digest": DIGEST,
        "tag": "1.0", "media_type": "m", "user_agent": api.MANUAL_SCAN_USER_AGENT,
        "time": "1970-01-01T00:00:00Z", "event_id": ""}


@pytest.mark.integration
def test_get_unknown_rescan_is_404(store: Store) -> None:
    response = call("api_get_rescan", request("GET", "rescans/rescan-x-2025-W10",
                                              route_params={"id": "rescan-x-2025-W10"}))
    assert (response.status_code, body(response)) == (
        404, {"error": {"code": "NotFound", "message": "no rescan rescan-x-2025-W10"}})
