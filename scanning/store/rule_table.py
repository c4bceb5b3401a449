"""Disable rules: PartitionKey ``rule``, RowKey ``encode_key(rule id)``, the rule as JSON.

A handful to a few thousand rows, read whole whenever rules are applied. The store keeps the
JSON document of ``scanning.rules.rule_to_json`` as it is given and hands it back; what a rule
means, and its validation, are ``scanning.rules``'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scanning.errors import NotFound, StoreError
from scanning.store.entities import as_str, read_entity, storage_errors
from scanning.store.keys import encode_key

PARTITION = "rule"


def document_from_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(as_str(entity.get("rule")))
    except ValueError as error:
        raise StoreError(f"stored rule {entity.get('RowKey')!r} is malformed: {error}") from error
    if not isinstance(document, dict):
        raise StoreError(f"stored rule {entity.get('RowKey')!r} is not a JSON object")
    return document


class RuleTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    @staticmethod
    def _entity(rule_id: str, document: Mapping[str, Any]) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": encode_key(rule_id),
                "rule": json.dumps(document, sort_keys=True)}

    def create(self, rule_id: str, document: Mapping[str, Any]) -> bool:
        """Insert a rule; False (and nothing written) when a rule with its id exists."""
        with storage_errors(f"creating rule {rule_id}"):
            try:
                self.table.create_entity(self._entity(rule_id, document))
            except ResourceExistsError:
                return False
        return True

    def put(self, rule_id: str, document: Mapping[str, Any]) -> None:
        """Create or replace a rule (OpenVEX re-imports use this)."""
        with storage_errors(f"saving rule {rule_id}"):
            self.table.upsert_entity(self._entity(rule_id, document))

    def get(self, rule_id: str) -> dict[str, Any]:
        entity = read_entity(self.table, PARTITION, encode_key(rule_id),
                             f"reading rule {rule_id}")
        if entity is None:
            raise NotFound(f"no rule {rule_id!r}")
        return document_from_entity(entity)

    def list(self) -> tuple[dict[str, Any], ...]:
        """Every rule's document, expired ones included, in id order."""
        with storage_errors("listing rules"):
            entities = list(self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": PARTITION}))
        entities.sort(key=lambda entity: str(entity.get("RowKey")))
        return tuple(document_from_entity(entity) for entity in entities)

    def delete(self, rule_id: str) -> None:
        """Delete a rule; NotFound when there is none."""
        self.get(rule_id)
        with storage_errors(f"deleting rule {rule_id}"):
            self.table.delete_entity(PARTITION, encode_key(rule_id))
