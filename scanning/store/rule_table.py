"""Disable rules: PartitionKey ``rule``, RowKey ``encode_key(rule id)``, the rule as JSON.

A handful to a few thousand rows, read whole whenever rules are applied; the JSON is the
validated shape of ``scanning.rules.rule_to_json`` and is validated again on the way out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scanning.errors import BadRequest, NotFound, StoreError
from scanning.rules import DisableRule, rule_from_json, rule_to_json
from scanning.store.entities import as_str, read_entity, storage_errors
from scanning.store.keys import encode_key

PARTITION = "rule"


def rule_from_entity(entity: Mapping[str, Any]) -> DisableRule:
    try:
        data = json.loads(as_str(entity.get("rule")))
        return rule_from_json(data, now=datetime.now(UTC), check_expiry=False)
    except (ValueError, BadRequest) as error:
        raise StoreError(f"stored rule {entity.get('RowKey')!r} is malformed: {error}") from error


class RuleTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def _entity(self, rule: DisableRule) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION, "RowKey": encode_key(rule.id),
            "rule": json.dumps(rule_to_json(rule), sort_keys=True),
            "created": rule.created, "expires": rule.expires, "source": rule.source,
        }

    def create(self, rule: DisableRule) -> bool:
        """Insert ``rule``; False (and nothing written) when a rule with its id exists."""
        with storage_errors(f"creating rule {rule.id}"):
            try:
                self.table.create_entity(self._entity(rule))
            except ResourceExistsError:
                return False
        return True

    def put(self, rule: DisableRule) -> None:
        """Create or replace ``rule`` (OpenVEX re-imports use this)."""
        with storage_errors(f"saving rule {rule.id}"):
            self.table.upsert_entity(self._entity(rule))

    def get(self, rule_id: str) -> DisableRule:
        entity = read_entity(self.table, PARTITION, encode_key(rule_id),
                             f"reading rule {rule_id}")
        if entity is None:
            raise NotFound(f"no rule {rule_id!r}")
        return rule_from_entity(entity)

    def list(self) -> tuple[DisableRule, ...]:
        """Every rule, expired ones included, in id order."""
        with storage_errors("listing rules"):
            entities = list(self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": PARTITION}))
        return tuple(sorted((rule_from_entity(entity) for entity in entities),
                            key=lambda rule: rule.id))

    def delete(self, rule_id: str) -> None:
        """Delete a rule; NotFound when there is none (the service's delete is silent)."""
        self.get(rule_id)
        with storage_errors(f"deleting rule {rule_id}"):
            self.table.delete_entity(PARTITION, encode_key(rule_id))
