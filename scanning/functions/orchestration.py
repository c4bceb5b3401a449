"""The scan orchestration and its activities. Each activity parses its input and calls one
function of ``scanning.service``; the orchestrator only sequences them (deterministic: no I/O,
no clock but the context's)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from scanning import service
from scanning.model import AssessmentStatus
from scanning.service import ScanRequest
from scanning.store.scans import new_scan_id

bp = df.Blueprint()

# Registry and storage hiccups are transient (429, 5xx, timeouts): four attempts. The Python
# RetryOptions has no backoff coefficient; the registry client itself backs off exponentially
# between its own attempts inside each activity (scanning.registry).
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=4)


@bp.orchestration_trigger(context_name="context")
def scan_image(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    request_json = context.get_input()
    request = ScanRequest.from_json(request_json)
    scan_id = new_scan_id(context.current_utc_datetime, unique=context.instance_id)
    if request.may_be_index_child:
        context.set_custom_status({"stage": "waiting for a parent index"})
        grace = timedelta(seconds=service.child_grace_seconds())
        yield context.create_timer(context.current_utc_datetime + grace)
        parent = yield context.call_activity_with_retry("find_parent_index", RETRY, request_json)
        if parent:
            context.set_custom_status({"stage": "done", "status": "covered by index"})
            return {"status": "covered_by_index", "index": parent, "scan_id": ""}
    step = {"request": request_json, "scan_id": scan_id}
    try:
        context.set_custom_status({"stage": "resolving", "scanId": scan_id})
        prepared = yield context.call_activity_with_retry("prepare_scan", RETRY, step)
        if prepared["done"]:
            context.set_custom_status({"stage": "done", "status": prepared["status"]})
            return prepared
        layers = prepared["layers"]
        context.set_custom_status({"stage": "reading layers", "layers": len(layers),
                                   "scanId": scan_id})
        outcomes = []
        if layers:
            outcomes = yield context.task_all([
                context.call_activity_with_retry("read_layer", RETRY,
                                                 {"request": request_json, "layer": layer})
                for layer in layers
            ])
        errors = {outcome["digest"]: outcome["error"] for outcome in outcomes
                  if outcome["error"]}
        context.set_custom_status({"stage": "assessing", "scanId": scan_id})
        result = yield context.call_activity_with_retry("assess_scan", RETRY, {
            **step, "resolved": prepared["resolved"], "layer_errors": errors})
    except Exception as error:  # an activity failed for good: the scan ends as failed
        reason = str(error) or type(error).__name__
        result = yield context.call_activity_with_retry(
            "fail_scan", RETRY, {**step, "reason": reason})
    context.set_custom_status({"stage": "done", "status": result["status"], "scanId": scan_id})
    return result


@bp.activity_trigger(input_name="request")
def find_parent_index(request: dict[str, Any]) -> str:
    parsed = ScanRequest.from_json(request)
    return service.parent_index(service.services(), parsed.registry, parsed.digest)


@bp.activity_trigger(input_name="step")
def prepare_scan(step: dict[str, Any]) -> dict[str, Any]:
    return service.prepare(service.services(), ScanRequest.from_json(step["request"]),
                           step["scan_id"])


@bp.activity_trigger(input_name="step")
def read_layer(step: dict[str, Any]) -> dict[str, str]:
    return service.read_layer(service.services(), ScanRequest.from_json(step["request"]),
                              step["layer"])


@bp.activity_trigger(input_name="step")
def assess_scan(step: dict[str, Any]) -> dict[str, Any]:
    return service.finish(service.services(), ScanRequest.from_json(step["request"]),
                          step["scan_id"], step["resolved"], step["layer_errors"])


@bp.activity_trigger(input_name="step")
def fail_scan(step: dict[str, Any]) -> dict[str, Any]:
    return service.record_outcome(service.services(), ScanRequest.from_json(step["request"]),
                                  step["scan_id"], AssessmentStatus.FAILED, step["reason"])
