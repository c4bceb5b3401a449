"""The scan orchestration and its activities. Each activity parses its input and calls one
function of ``scanning.service``, exchanging the typed payloads of
``scanning.service.payloads``; the orchestrator only sequences them (deterministic: no I/O,
no clock but the context's)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from scanning.assessment import outcome
from scanning.model import AssessmentStatus
from scanning.service import scan
from scanning.service.context import services
from scanning.service.payloads import (
    AssessStep,
    FailStep,
    LayerOutcome,
    LayerStep,
    Prepared,
    ScanRequest,
    ScanStep,
)
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
    step = ScanStep(request=request,
                    scan_id=new_scan_id(context.current_utc_datetime, unique=context.instance_id))
    scan_id = step.scan_id
    if request.may_be_index_child:
        context.set_custom_status({"stage": "waiting for a parent index"})
        grace = timedelta(seconds=scan.child_grace_seconds())
        yield context.create_timer(context.current_utc_datetime + grace)
        parent = yield context.call_activity_with_retry("find_parent_index", RETRY, request_json)
        if parent:
            context.set_custom_status({"stage": "done", "status": "covered by index"})
            return {"status": "covered_by_index", "index": parent, "scan_id": ""}
    try:
        context.set_custom_status({"stage": "resolving", "scanId": scan_id})
        prepared = Prepared.from_json(
            (yield context.call_activity_with_retry("prepare_scan", RETRY, step.to_json())))
        if prepared.outcome is not None:
            context.set_custom_status({"stage": "done", "status": prepared.outcome.status.value})
            return prepared.outcome.to_json()
        assert prepared.resolved is not None
        context.set_custom_status({"stage": "reading layers", "layers": len(prepared.layers),
                                   "scanId": scan_id})
        outcomes: list[Any] = []
        if prepared.layers:
            outcomes = yield context.task_all([
                context.call_activity_with_retry(
                    "analyze_layer", RETRY, LayerStep(request=request, layer=layer).to_json())
                for layer in prepared.layers
            ])
        context.set_custom_status({"stage": "assessing", "scanId": scan_id})
        result = yield context.call_activity_with_retry("assess_image", RETRY, AssessStep(
            step=step, resolved=prepared.resolved,
            layer_errors=tuple(LayerOutcome.from_json(outcome) for outcome in outcomes),
        ).to_json())
    except Exception as error:  # an activity failed for good: the scan ends as failed
        reason = str(error) or type(error).__name__
        result = yield context.call_activity_with_retry(
            "fail_scan", RETRY, FailStep(step=step, reason=reason).to_json())
    context.set_custom_status({"stage": "done", "status": result["status"], "scanId": scan_id})
    return result


@bp.activity_trigger(input_name="request")
def find_parent_index(request: dict[str, Any]) -> str:
    parsed = ScanRequest.from_json(request)
    return scan.parent_index(services(), parsed.registry, parsed.digest)


@bp.activity_trigger(input_name="step")
def prepare_scan(step: dict[str, Any]) -> dict[str, Any]:
    return scan.prepare_scan(services(), ScanStep.from_json(step)).to_json()


@bp.activity_trigger(input_name="step")
def analyze_layer(step: dict[str, Any]) -> dict[str, str]:
    return scan.analyze_layer(services(), LayerStep.from_json(step)).to_json()


@bp.activity_trigger(input_name="step")
def assess_image(step: dict[str, Any]) -> dict[str, Any]:
    return scan.assess_image(services(), AssessStep.from_json(step)).to_json()


@bp.activity_trigger(input_name="step")
def fail_scan(step: dict[str, Any]) -> dict[str, Any]:
    failure = FailStep.from_json(step)
    return scan.record_outcome(services(), failure.step,
                               outcome(AssessmentStatus.FAILED, failure.reason)).to_json()
