"""Each assessment's sub-assessments to a Log Analytics table, for KQL across images (optional).

Azure Resource Graph let Defender users query sub-assessments with KQL. With
``FINDINGS_DCR_ENDPOINT`` (a data collection endpoint's logs ingestion URL) and
``FINDINGS_DCR_RULE_ID`` (the data collection rule's immutable id) set, every assessment's
MDVM-shaped sub-assessments are uploaded through the Logs Ingestion API to the rule's stream
(``FINDINGS_DCR_STREAM``), which the rule sends to the ``AcrScanSubAssessments_CL`` table
(``infra/modules/findings-table.bicep``). One row per sub-assessment: the ARM ``id``, ``name``
and ``type``, the ``properties`` object as Defender has it, and a few flat columns to filter on.

The upload has a deadline and its failure does not fail the scan (the store has the results);
it is logged, and the next assessment of the image sends the rows again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scanning.assessment import Verdict
from scanning.config import setting
from scanning.defender import MDVM_KEY, Filters, RegistryIds, verdict_sub_assessments
from scanning.errors import ExportError, ScanError
from scanning.store import ImageRecord

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportTarget:
    endpoint: str
    rule_id: str
    stream: str

    @classmethod
    def from_settings(cls) -> ExportTarget | None:
        """The configured target; None when the export is off (either setting unset)."""
        endpoint = setting("FINDINGS_DCR_ENDPOINT").strip()
        rule_id = setting("FINDINGS_DCR_RULE_ID").strip()
        if not endpoint or not rule_id:
            return None
        return cls(endpoint=endpoint, rule_id=rule_id, stream=setting("FINDINGS_DCR_STREAM"))


def export_rows(image: ImageRecord, verdict: Verdict, registry_id: str,
                now: datetime) -> list[dict[str, Any]]:
    """The table rows of one assessment: its MDVM sub-assessments, flattened for filtering."""
    rows = []
    for item in verdict_sub_assessments(MDVM_KEY, registry_id, image, verdict, Filters(), now):
        properties = item["properties"]
        rows.append({
            "TimeGenerated": properties["timeGenerated"], "Id": item["id"],
            "Name": item["name"], "Type": item["type"], "AssessmentKey": MDVM_KEY,
            "Registry": image.registry, "Repository": image.repository,
            "Digest": image.digest, "StatusCode": properties["status"]["code"],
            "Severity": properties["status"]["severity"], "Properties": properties,
        })
    return rows


Uploader = Callable[[ExportTarget, list[dict[str, Any]]], None]


def upload_rows(target: ExportTarget, rows: list[dict[str, Any]], credential: Any,
                **client_options: Any) -> None:
    """Upload ``rows`` with the real client (gzip, 1 MB chunks), within the deadlines."""
    from azure.core.exceptions import AzureError, HttpResponseError
    from azure.monitor.ingestion import LogsIngestionClient

    client = LogsIngestionClient(target.endpoint, credential,
                                 connection_timeout=CONNECTION_TIMEOUT_SECONDS,
                                 read_timeout=READ_TIMEOUT_SECONDS, **client_options)
    try:
        with client:
            logs: list[MutableMapping[str, Any]] = list(rows)
            client.upload(rule_id=target.rule_id, stream_name=target.stream, logs=logs)
    except HttpResponseError as error:
        raise ExportError(f"Logs Ingestion refused the rows: {error.status_code} "
                          f"{error.reason}", retryable=error.status_code in (429, 500, 502,
                                                                             503, 504)) from error
    except AzureError as error:
        raise ExportError(f"Logs Ingestion did not answer: {error}", retryable=True) from error


def identity_uploader(credential: Callable[[], Any]) -> Uploader:
    """Uploads as the app's identity (``credential`` is called only when there is a target)."""
    return lambda target, rows: upload_rows(target, rows, credential())


def export_assessment(saved_image: Callable[[], ImageRecord], verdict: Verdict, now: datetime,
                      upload: Uploader) -> int:
    """Send the assessment's rows when the export is on; the number sent (0 when off).

    ``saved_image`` reads the image row as the assessment left it, only when there is a target.
    """
    target = ExportTarget.from_settings()
    if target is None:
        return 0
    image = saved_image()
    registry_id = RegistryIds.from_settings().resource_id(image.registry)
    if registry_id is None:
        log.info("findings of %s not exported: REGISTRY_RESOURCE_IDS leaves the registry out",
                 image.registry)
        return 0
    rows = export_rows(image, verdict, registry_id, now)
    try:
        upload(target, rows)
    except ScanError as error:
        log.warning("findings of %s/%s@%s not exported to Log Analytics: %s", image.registry,
                    image.repository, image.digest, error)
        return 0
    return len(rows)
