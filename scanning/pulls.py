"""The pull ledger's sources: ACR resource logs in Log Analytics, and local pull notifications.

ACR has no API for an image's last pull time. In Azure, the registry's diagnostic setting sends
``ContainerRegistryRepositoryEvents`` to a Log Analytics workspace, where each pull is a row with
``OperationName == "Pull"``; we query it with ``azure-monitor-query``. Locally the Distribution
registry notifies every manifest GET/HEAD as a ``pull`` event. Either way the scanner's own pulls
(user agent ``acr-scan/…``) never count: otherwise every rescan would keep every image "pulled".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scanning import USER_AGENT
from scanning.errors import RegistryError
from scanning.events import RegistryEvent, parse_time

log = logging.getLogger(__name__)

OWN_USER_AGENT_PREFIX = USER_AGENT.split("/", 1)[0] + "/"

# column_ifexists keeps the query valid on workspaces whose schema lacks UserAgent.
PULL_QUERY = """
ContainerRegistryRepositoryEvents
| where OperationName == "Pull" and isnotempty(Digest)
| where tostring(column_ifexists("UserAgent", "")) !startswith "{prefix}"
| summarize LastPull = max(TimeGenerated), Pulls = count() by LoginServer, Repository, Digest
""".strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRecord:
    registry: str
    repository: str
    digest: str
    time: datetime
    count: int = 1


def is_own_pull(user_agent: str) -> bool:
    return user_agent.startswith(OWN_USER_AGENT_PREFIX)


def pull_from_event(event: RegistryEvent) -> PullRecord | None:
    """A pull of an image manifest by someone other than the scanner, else None.

    Blob pulls (every 4 MiB range request is one) say nothing more than the manifest pull
    that preceded them, so only manifest pulls count.
    """
    if event.action != "pull" or not event.is_manifest or is_own_pull(event.user_agent):
        return None
    return PullRecord(
        registry=event.registry,
        repository=event.repository,
        digest=event.digest,
        time=parse_time(event.time),
    )


def query_log_analytics(workspace_id: str, window: timedelta | tuple[datetime, datetime],
                        credential: Any) -> list[PullRecord]:
    """Pulls in ``window`` (a duration back from now, or a start and end) from the logs."""
    from azure.core.exceptions import HttpResponseError
    from azure.monitor.query import LogsQueryClient, LogsQueryStatus

    client = LogsQueryClient(credential)
    query = PULL_QUERY.format(prefix=OWN_USER_AGENT_PREFIX)
    try:
        response = client.query_workspace(workspace_id, query, timespan=window)
    except HttpResponseError as error:
        raise RegistryError(f"Log Analytics query failed: {error.message}",
                            retryable=error.status_code in (429, 500, 502, 503, 504)) from error
    if response.status != LogsQueryStatus.SUCCESS:
        raise RegistryError("Log Analytics returned a partial result for the pull query",
                            retryable=True)
    records = []
    for table in response.tables:
        columns = list(table.columns)
        for row in table.rows:
            values = dict(zip(columns, row, strict=False))
            records.append(PullRecord(
                registry=str(values["LoginServer"]),
                repository=str(values["Repository"]),
                digest=str(values["Digest"]),
                time=values["LastPull"],
                count=int(values["Pulls"]),
            ))
    log.info("Log Analytics reported pulls of %d image digests", len(records))
    return records
