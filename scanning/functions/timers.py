"""Timers: the weekly rescan (they start its orchestration), the daily advisory refresh,
catch-up, the dashboard's summary, and (in Azure) pull sync.

Schedules are six-field NCRONTAB read from app settings (``%NAME%``), so they can be changed
without a redeploy.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from scanning.functions.events import scan_instance_id, start_once, start_request_once
from scanning.functions.rescans import (
    RESCAN_ORCHESTRATOR,
    reassessment_id,
    rescan_start,
    weekly_rescan_id,
)
from scanning.service import maintenance, summary
from scanning.service.context import services
from scanning.service.payloads import ScanRequest

log = logging.getLogger(__name__)

bp = df.Blueprint()


def now() -> datetime:
    """The timers' clock (a seam for tests)."""
    return datetime.now(UTC)


async def _reanalyse(client: df.DurableOrchestrationClient,
                     requests: tuple[ScanRequest, ...], purpose: str) -> None:
    for request in requests:
        await start_request_once(client, request, scan_instance_id(request, purpose))


async def _start_rescan(client: df.DurableOrchestrationClient, rescan_id: str,
                        moment: datetime) -> None:
    started = await start_once(client, RESCAN_ORCHESTRATOR, rescan_id,
                               rescan_start(rescan_id, moment).to_json())
    log.info("rescan %s %s; progress at /api/rescans/%s",
             rescan_id, "started" if started else "exists already", rescan_id)


@bp.timer_trigger(arg_name="timer", schedule="%RESCAN_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def weekly_rescan(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Starts this week's rescan orchestration (``scanning.functions.rescans``), once."""
    moment = now()
    await _start_rescan(client, weekly_rescan_id(services().store.prefix, moment), moment)


@bp.timer_trigger(arg_name="timer", schedule="%ADVISORY_REFRESH_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def refresh_advisories(timer: func.TimerRequest,
                             client: df.DurableOrchestrationClient) -> None:
    with tempfile.TemporaryDirectory(prefix="acr-scan-feeds-") as workdir:
        published = maintenance.refresh_advisories(services(), Path(workdir))
    if published:
        moment = now()
        await _start_rescan(client, reassessment_id(services().store.prefix, moment, published),
                            moment)


@bp.timer_trigger(arg_name="timer", schedule="%CATCHUP_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def catch_up(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    requests = maintenance.catch_up(services())
    await _reanalyse(client, requests, "")


@bp.timer_trigger(arg_name="timer", schedule="0 15 * * * *")
def sync_pulls(timer: func.TimerRequest) -> None:
    count = maintenance.sync_pulls_from_log_analytics(services())
    log.info("pull sync: %d image digests pulled", count)


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def dashboard_summary(timer: func.TimerRequest) -> None:
    """The dashboard's overview and images listing (``scanning.service.summary``)."""
    summary.refresh_summary(services().store, now())
