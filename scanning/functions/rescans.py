"""The rescan orchestration: the weekly rescan and the re-assessment after an advisory refresh
fanned out over activities, one chunk of pulled images each, so the Functions host spreads
them over instances. The orchestrator only sequences (deterministic: no I/O, no clock); each
activity parses its payload and calls one function of ``scanning.service.fanout``."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from scanning.config import int_setting
from scanning.functions.events import SCAN_ORCHESTRATOR, scan_instance_id
from scanning.functions.orchestration import RETRY
from scanning.service import fanout, summary
from scanning.service.context import services
from scanning.service.fanout import ChunkFailure, ChunkStep, RescanPlan, RescanResult, RescanStart

bp = df.Blueprint()

RESCAN_ORCHESTRATOR = "rescan_images"
CHUNK_ORCHESTRATOR = "rescan_chunk_guarded"


def weekly_rescan_id(prefix: str, moment: datetime) -> str:
    """One weekly rescan per ISO week and store, so a repeated timer tick starts nothing."""
    year, week, _ = moment.isocalendar()
    return f"rescan-{prefix}-{year}-W{week:02d}"


def reassessment_id(prefix: str, moment: datetime, index_version: str) -> str:
    """One re-assessment per published index: the refresh's minute, for people, and 8 hex
    digits of the published version, so two refreshes that publish within one minute start
    two re-assessments (the second against its own index), and a repeated start of the same
    one finds it."""
    published = hashlib.blake2b(index_version.encode(), digest_size=4).hexdigest()
    return f"reassess-{prefix}-{moment:%Y%m%dT%H%M}-{published}"


def rescan_start(rescan_id: str, moment: datetime) -> RescanStart:
    return RescanStart(rescan_id=rescan_id, moment=moment,
                       window_days=int_setting("PULL_WINDOW_DAYS"),
                       chunk_images=max(1, int_setting("RESCAN_CHUNK_IMAGES")),
                       purpose=f"rescan/{moment:%Y-%m-%d}")


@bp.orchestration_trigger(context_name="context")
def rescan_images(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Plan, re-assess every chunk (in parallel; a chunk that fails for good is recorded as
    failed and the others go on), add the results up, then start the re-analyses."""
    start = RescanStart.from_json(context.get_input())
    context.set_custom_status({"stage": "planning"})
    plan = RescanPlan.from_json(
        (yield context.call_activity_with_retry("plan_rescan", RETRY, start.to_json())))
    context.set_custom_status({"stage": "re-assessing", "chunks": plan.chunks,
                               "images": plan.images})
    if plan.chunks:
        yield context.task_all([
            context.call_sub_orchestrator(CHUNK_ORCHESTRATOR,
                                          ChunkStep(plan=plan, number=number).to_json(),
                                          f"{start.rescan_id}:chunk-{number}")
            for number in range(plan.chunks)])
    total = RescanResult.from_json(
        (yield context.call_activity_with_retry("finish_rescan", RETRY, plan.to_json())))
    context.set_custom_status({"stage": "re-analysing", "reanalyze": len(total.reanalyze)})
    if total.reanalyze:
        # scan_image records its own failures: each of these ends completed.
        yield context.task_all([
            context.call_sub_orchestrator(SCAN_ORCHESTRATOR, request.to_json(),
                                          scan_instance_id(request, start.purpose))
            for request in total.reanalyze])
    context.set_custom_status({"stage": "done"})
    return {**total.to_json(), "reanalyze": len(total.reanalyze)}


@bp.orchestration_trigger(context_name="context")
def rescan_chunk_guarded(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """One chunk, retried; when its retries are spent it is recorded as failed, so the
    parent's ``task_all`` always completes with every other chunk's work kept."""
    step_json = context.get_input()
    try:
        return (yield context.call_activity_with_retry("rescan_chunk", RETRY, step_json))
    except Exception as error:  # the chunk failed for good: record it, keep the others
        failure = ChunkFailure(step=ChunkStep.from_json(step_json),
                               reason=str(error) or type(error).__name__)
        return (yield context.call_activity_with_retry("fail_rescan_chunk", RETRY,
                                                       failure.to_json()))


@bp.activity_trigger(input_name="start")
def plan_rescan(start: dict[str, Any]) -> dict[str, Any]:
    return fanout.plan_rescan(services(), RescanStart.from_json(start)).to_json()


@bp.activity_trigger(input_name="step")
def rescan_chunk(step: dict[str, Any]) -> dict[str, Any]:
    return fanout.rescan_planned_chunk(services(), ChunkStep.from_json(step)).to_json()


@bp.activity_trigger(input_name="failure")
def fail_rescan_chunk(failure: dict[str, Any]) -> dict[str, Any]:
    return fanout.fail_chunk(services(), ChunkFailure.from_json(failure)).to_json()


@bp.activity_trigger(input_name="plan")
def finish_rescan(plan: dict[str, Any]) -> dict[str, Any]:
    result = fanout.finish_rescan(services(), RescanPlan.from_json(plan)).to_json()
    summary.refresh_after(services().store, datetime.now(UTC), "rescan")
    return result
