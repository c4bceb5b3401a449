"""Notifications only when there is a problem.

One message when an image becomes unhealthy or gains new active findings; healthy images and
unchanged results send nothing. Messages go to an Azure Storage queue and, when configured, are
POSTed as JSON to a webhook.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any, Protocol

from scanning import USER_AGENT
from scanning.model import AssessmentStatus, AssessmentSummary, Finding, Severity, finding_key

log = logging.getLogger(__name__)

TOP_FINDINGS = 10


def summarise(status: AssessmentStatus, findings: Iterable[Finding]) -> AssessmentSummary:
    active = frozenset(finding_key(f) for f in findings if not f.disabled_by)
    return AssessmentSummary(status=status, active_finding_keys=active)


def needs_notification(previous: AssessmentSummary | None, current: AssessmentSummary) -> bool:
    if current.status != AssessmentStatus.UNHEALTHY:
        return False
    if previous is None or previous.status != AssessmentStatus.UNHEALTHY:
        return True
    return bool(current.active_finding_keys - previous.active_finding_keys)


def build_message(*, registry: str, repository: str, digest: str, tags: Iterable[str],
                  status: AssessmentStatus, findings: Iterable[Finding],
                  previous: AssessmentSummary | None) -> dict[str, Any]:
    active = [f for f in findings if not f.disabled_by]
    counts = {severity.value: 0 for severity in Severity}
    for finding in active:
        counts[finding.severity.value] += 1
    known = previous.active_finding_keys if previous else frozenset()
    # A finding every platform of an index has (the same id, package and version on amd64 and
    # arm64) is one thing to fix: listed and counted as new once.
    unique = list({finding_key(f): f for f in active}.values())
    ranked = sorted(unique, key=lambda f: (-f.severity.rank, f.id, f.package))
    return {
        "registry": registry,
        "repository": repository,
        "digest": digest,
        "tags": sorted(tags),
        "status": status.value,
        "counts": counts,
        "newFindings": sum(1 for f in unique if finding_key(f) not in known),
        "topFindings": [
            {"id": f.id, "severity": f.severity.value, "package": f.package,
             "installedVersion": f.installed_version, "fixedVersion": f.fixed_version,
             "remediation": f.remediation}
            for f in ranked[:TOP_FINDINGS]
        ],
    }


class MessageQueue(Protocol):
    def send(self, body: str) -> None: ...


def send(message: dict[str, Any], *, queue: MessageQueue | None, webhook_url: str,
         timeout: float = 10.0) -> None:
    body = json.dumps(message, sort_keys=True)
    if queue is not None:
        queue.send(body)
    if webhook_url:
        request = urllib.request.Request(
            webhook_url, data=body.encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, TimeoutError) as error:
            # A webhook outage must not fail the scan: the queue still has the message.
            log.warning("webhook notification failed for %s: %s", message["digest"], error)
