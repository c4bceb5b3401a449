"""The scan orchestration. For now it records the event; the scan pipeline grows here."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from scanning.functions import eventlog

bp = df.Blueprint()

# Storage hiccups are transient: three attempts, 5 s apart.
STORE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=3)


@bp.orchestration_trigger(context_name="context")
def scan_image(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    event = context.get_input()
    recorded = yield context.call_activity_with_retry("record_event", STORE_RETRY, event)
    return recorded


@bp.activity_trigger(input_name="event")
def record_event(event: dict[str, Any]) -> dict[str, str]:
    return eventlog.record_event(event)
