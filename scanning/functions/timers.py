"""Timers: weekly rescans, the daily advisory refresh, catch-up, and (in Azure) pull sync.

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

from scanning.functions.events import scan_instance_id, start_request_once
from scanning.service import maintenance
from scanning.service.context import services
from scanning.service.payloads import ScanRequest
from scanning.service.rescan import RescanReport, rescan_pulled

log = logging.getLogger(__name__)

bp = df.Blueprint()


async def _reanalyse(client: df.DurableOrchestrationClient,
                     requests: tuple[ScanRequest, ...], purpose: str) -> None:
    for request in requests:
        await start_request_once(client, request, scan_instance_id(request, purpose))


async def _rescan(client: df.DurableOrchestrationClient) -> RescanReport:
    report = rescan_pulled(services())
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    await _reanalyse(client, report.to_reanalyze, f"rescan/{today}")
    return report


@bp.timer_trigger(arg_name="timer", schedule="%RESCAN_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def weekly_rescan(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    report = await _rescan(client)
    log.info("weekly rescan: %s", report)


@bp.timer_trigger(arg_name="timer", schedule="%ADVISORY_REFRESH_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def refresh_advisories(timer: func.TimerRequest,
                             client: df.DurableOrchestrationClient) -> None:
    with tempfile.TemporaryDirectory(prefix="acr-scan-feeds-") as workdir:
        changed = maintenance.refresh_advisories(services(), Path(workdir))
    if changed:
        report = await _rescan(client)
        log.info("advisories changed; re-assessed pulled images: %s", report)


@bp.timer_trigger(arg_name="timer", schedule="%CATCHUP_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def catch_up(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    requests = maintenance.catch_up(services())
    await _reanalyse(client, requests, "")


@bp.timer_trigger(arg_name="timer", schedule="0 15 * * * *")
def sync_pulls(timer: func.TimerRequest) -> None:
    count = maintenance.sync_pulls_from_log_analytics(services())
    log.info("pull sync: %d image digests pulled", count)
