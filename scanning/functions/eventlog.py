"""The received-events table: one row per image whose push started a scan.

The first slice of the scan pipeline (``scan_image`` records what arrived) until
``scanning/store`` owns persistence. Plain Python over azure-data-tables, no Functions imports.
Table Storage keys may not contain ``/ \\ # ?``, so both keys are percent-encoded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from scanning.config import setting
from scanning.errors import ConfigError, TransientStoreError

TABLE_NAME = "registryevents"
MAX_LISTED = 1000
FIELDS = ("registry", "repository", "digest", "tag", "media_type", "action", "user_agent",
          "time", "event_id")


def _service() -> TableServiceClient:
    connection = setting("AzureWebJobsStorage")
    if connection:
        return TableServiceClient.from_connection_string(connection)
    endpoint = setting("AzureWebJobsStorage__tableServiceUri")
    if not endpoint:
        raise ConfigError("AzureWebJobsStorage (or AzureWebJobsStorage__tableServiceUri) is unset")
    from azure.identity import DefaultAzureCredential  # only needed in Azure

    return TableServiceClient(endpoint, credential=DefaultAzureCredential())


def _table() -> TableClient:
    return _service().create_table_if_not_exists(TABLE_NAME)


def _key(value: str) -> str:
    return quote(value, safe="")


def record_event(event: dict[str, Any]) -> dict[str, str]:
    """Upsert one event (a ``RegistryEvent`` as a dict) and return the stored fields."""
    record = {name: str(event.get(name, "")) for name in FIELDS}
    entity = {"PartitionKey": _key(record["registry"]), "RowKey": _key(record["digest"]),
              **record}
    try:
        with _table() as table:
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)
    except AzureError as error:
        raise TransientStoreError(f"recording {record['digest']} failed: {error}") from error
    return record


def list_events(*, digest: str = "") -> list[dict[str, str]]:
    """Recorded events, oldest first (at most ``MAX_LISTED``), optionally for one digest."""
    try:
        with _table() as table:
            if digest:
                entities = table.query_entities("RowKey eq @key", parameters={"key": _key(digest)},
                                                results_per_page=MAX_LISTED)
            else:
                entities = table.list_entities(results_per_page=MAX_LISTED)
            records = [{name: str(entity.get(name, "")) for name in FIELDS}
                       for _, entity in zip(range(MAX_LISTED), entities, strict=False)]
    except AzureError as error:
        raise TransientStoreError(f"listing events failed: {error}") from error
    return sorted(records, key=lambda record: (record["time"], record["digest"]))
