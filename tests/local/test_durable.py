"""Orchestrations run in-process against the real activities, with retries and fan-out."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning.local.host import FunctionHost
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, request

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
attempts: Counter[str] = Counter()
attempts_lock = threading.Lock()
# Three squares wait for each other: they finish only if the fan-out really runs in parallel.
barrier = threading.Barrier(3, timeout=10)
QUICK_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=10, max_number_of_attempts=3)


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    numbers = context.get_input()
    squares = yield context.task_all([context.call_activity("square", n) for n in numbers])
    flaky = yield context.call_activity_with_retry("flaky", QUICK_RETRY, "fan_out")
    context.set_custom_status({"stage": "done"})
    return {"squares": squares, "flaky": flaky}


@app.orchestration_trigger(context_name="context")
def gives_up(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    result = yield context.call_activity_with_retry(
        "flaky", df.RetryOptions(first_retry_interval_in_milliseconds=10,
                                 max_number_of_attempts=2), "gives_up")
    return result


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    try:
        yield context.call_activity("always_fails", None)
    except Exception as error:
        return f"caught: {error}"
    return "not reached"


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = yield context.task_any([context.call_activity("echo", "a")])
    child = yield context.call_sub_orchestrator("child", 5)
    return {"any": first.result, "child": child, "same_clock": context.current_utc_datetime
            == context.current_utc_datetime}


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    doubled = yield context.call_activity("echo", context.get_input() * 2)
    return doubled


@app.orchestration_trigger(context_name="context")
def scan_image(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Stands in for the app's scan orchestration: what it returns when a scan ends."""
    outcome = yield context.call_activity("echo", {
        "status": "unhealthy", "reason": "", "findings": 3, "disabled": 1, "billed": True,
        "notified": True, "scan_id": "s-1"})
    return outcome


@app.activity_trigger(input_name="number")
def square(number: int) -> int:
    barrier.wait()
    return number * number


@app.activity_trigger(input_name="label")
def flaky(label: str) -> str:
    with attempts_lock:
        attempts[label] += 1
        count = attempts[label]
    if count < 3:
        raise RuntimeError(f"transient failure {count}")
    return f"{label} succeeded on attempt {count}"


@app.activity_trigger(input_name="value")
def always_fails(value: Any) -> None:
    raise ValueError("permanent")


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    server = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0)
    server.start()
    yield server
    server.stop()


def _run(host: FunctionHost, name: str, input_: Any, instance_id: str) -> Any:
    host.durable.start(name, instance_id, input_)
    instance = host.durable.wait(instance_id, timeout=20)
    return instance.status.value, instance.output


def test_fan_out_and_retried_activity_complete_with_the_right_output(host: FunctionHost) -> None:
    assert _run(host, "fan_out", [1, 2, 3], "fan-1") == (
        "Completed", {"squares": [1, 4, 9], "flaky": "fan_out succeeded on attempt 3"})


def test_custom_status_is_kept(host: FunctionHost) -> None:
    _run(host, "fan_out", [1, 2, 3], "fan-2")
    status = host.durable.get("fan-2")
    assert status is not None and status.custom_status == {"stage": "done"}


def test_exhausted_retries_fail_the_orchestration(host: FunctionHost) -> None:
    assert _run(host, "gives_up", None, "gives-up-1") == (
        "Failed", "Orchestrator function 'gives_up' failed: transient failure 2")


def test_activity_failure_is_thrown_into_the_orchestrator(host: FunctionHost) -> None:
    assert _run(host, "catches", None, "catches-1") == ("Completed", "caught: permanent")


def test_task_any_and_sub_orchestration(host: FunctionHost) -> None:
    assert _run(host, "parent", None, "parent-1") == (
        "Completed", {"any": "a", "child": 10, "same_clock": True})


def test_starting_a_completed_instance_again_does_not_rerun_it(host: FunctionHost) -> None:
    _run(host, "catches", None, "once")
    _, started = host.durable.start("catches", "once", None)
    assert (started, [instance.instance_id for instance in host.durable.instances()]) == (
        False, ["once"])


def test_a_finished_scan_prints_one_line(host: FunctionHost,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _run(host, "scan_image", {"registry": "127.0.0.1:5000", "repository": "team/app",
                              "digest": "sha256:ab"}, "scan-1")
    _run(host, "catches", None, "not-a-scan")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"scan 127\.0\.0\.1:5000/team/app@sha256:ab unhealthy: 3 findings, 1 disabled, "
        r"[0-9]+\.[0-9] s", lines[0]), lines


def test_check_status_response_points_at_the_status_endpoint(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/api/start/child", method="POST",
                           headers={"x-functions-key": FUNCTION_KEY}, body=b"4")
    links = json.loads(body)
    host.durable.wait(links["id"], timeout=20)
    final_status, final_body = request(links["statusQueryGetUri"])
    final = json.loads(final_body)
    assert (status, final_status, final["runtimeStatus"], final["output"], final["input"]) == (
        202, 200, "Completed", 8, 4)


def test_status_endpoint_needs_the_key(host: FunctionHost) -> None:
    status, body = request(f"{host.base_url}/runtime/webhooks/durabletask/instances/x")
    assert (status, json.loads(body)) == (401, {"error": {
        "code": "Unauthorized",
        "message": "a function key is required (x-functions-key header or code parameter)"}})
