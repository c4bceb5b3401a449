"""Inventories in and out of storage, their verdict, and the notification it may call for.

Shared by the scan (``scan``) and the weekly rescan (``rematch``): both store a verdict the
same way, decided by ``scanning.assessment``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from scanning.advisories.index import AdvisoryIndex
from scanning.analyzers import analyzer_set_version
from scanning.assessment import ImageRef, Verdict, assess_inventories
from scanning.config import setting
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.matching import (
    Lookup,
    MatchResult,
    lookup_signature,
    match_inventory,
    named_package_entries,
    package_lookups,
)
from scanning.model import AssessmentSummary, os_from_json
from scanning.notify import build_message, needs_notification, send, summarise
from scanning.rules import DisableRule
from scanning.service.context import Services
from scanning.service.payloads import ScanRequest
from scanning.store.images import ImageRecord
from scanning.store.match_keys import encode_match_keys

log = logging.getLogger(__name__)

INVENTORY_SCHEMA = 1
# Personalises ``inventory_digest``.
_INVENTORY_KEYS = b"inventory-keys"


def inventory_document(digest: str, inventories: tuple[ImageInventory, ...]) -> bytes:
    """The stored inventory document of an image (what ``parse_inventories`` reads)."""
    document = {"schema": INVENTORY_SCHEMA, "digest": digest,
                "analyzer_set_version": analyzer_set_version(),
                "platforms": [inventory.to_json() for inventory in inventories]}
    return json.dumps(document).encode()


def inventory_digest(document: bytes) -> str:
    """What ties match keys to the inventory document their lookups were listed from: 32 hex
    digits of BLAKE2b over the document's bytes. Keys listed by another matcher (other rules
    for listing lookups) are never read: their row names another ``matcher_version``, and
    ``RescanRun.row_keys`` refuses them. ~0.05 ms for 300 packages."""
    return hashlib.blake2b(document, digest_size=16, person=_INVENTORY_KEYS).hexdigest()


def save_inventories(services: Services, registry: str, digest: str,
                     inventories: tuple[ImageInventory, ...]) -> str:
    """Store the inventory document; its ``inventory_digest``, for the match keys."""
    document = inventory_document(digest, inventories)
    services.store.blobs.put_inventory(registry, digest, document)
    return inventory_digest(document)


def parse_inventories(data: bytes, registry: str, digest: str, *,
                      named_in: AdvisoryIndex | None = None,
                      ) -> tuple[ImageInventory, ...] | None:
    """An inventory document's inventories; None when unreadable or made by another analyzer
    set. ``named_in``: build only the packages that matching against that index has to see
    (``matching.named_package_entries``): for a re-match that takes the lookups of the others
    from the match keys of this same document, and for nothing else."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        log.warning("inventory of %s in %s is unreadable (%s): it is analysed again", digest,
                    registry, error)
        return None
    if (not isinstance(document, dict) or document.get("schema") != INVENTORY_SCHEMA
            or document.get("analyzer_set_version") != analyzer_set_version()):
        return None
    try:
        if named_in is None:
            return tuple(ImageInventory.from_json(item) for item in document["platforms"])
        return tuple(ImageInventory.from_json({**item, "packages": named_package_entries(
            os_from_json(item.get("os")), item["packages"], named_in)})
            for item in document["platforms"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        log.warning("inventory of %s in %s is malformed (%s): it is analysed again", digest,
                    registry, error)
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """A verdict and the per-lookup signatures a rescan compares against a newer index."""

    verdict: Verdict
    match_keys: bytes


def evaluate(inventories: Sequence[ImageInventory], *, request: ScanRequest,
             rules: Sequence[DisableRule], index: AdvisoryIndex,
             moment: datetime, signatures: Mapping[Lookup, str] | None = None,
             inventory: str = "", lookups: Iterable[Lookup] | None = None) -> Evaluation:
    """Match the inventories and decide the verdict; no I/O. ``signatures``: lookup
    signatures known to be today's (``matching.unchanged_signatures``), taken as they are.
    ``inventory``: the ``inventory_digest`` of the document the inventories were read from,
    kept in the match keys ("" when unknown). ``lookups``: every lookup of the document's
    inventories, when the caller has them from match keys of the same document (then the
    inventories may be ``parse_inventories(named_in=index)``'s, which lack packages no record
    names); listed from the packages when None."""
    known = signatures or {}
    signed: dict[Lookup, str] = {}
    matches: list[MatchResult | None] = []
    for each in inventories:
        if each.status is InventoryStatus.FAILED:
            matches.append(None)
            continue
        matches.append(match_inventory(each.os, each.packages, index))
        if lookups is None:
            _sign(signed, package_lookups(each.os, each.packages), known, index)
    if lookups is not None:
        _sign(signed, lookups, known, index)
    verdict = assess_inventories(
        inventories, matches, rules=rules, now=moment,
        image=ImageRef(registry=request.registry, repository=request.repository,
                       digest=request.digest))
    return Evaluation(verdict=verdict, match_keys=encode_match_keys(signed.items(), inventory))


def _sign(signed: dict[Lookup, str], lookups: Iterable[Lookup], known: Mapping[Lookup, str],
          index: AdvisoryIndex) -> None:
    """Each lookup's signature into ``signed``: the known one, else today's."""
    for lookup in lookups:
        if lookup not in signed:
            signature = known.get(lookup)
            signed[lookup] = (lookup_signature(index, lookup) if signature is None
                              else signature)


def notification(request: ScanRequest, verdict: Verdict, previous: AssessmentSummary | None,
                 image: ImageRecord | None) -> dict[str, Any] | None:
    """The notification this verdict calls for, or None when there is no new problem."""
    if not needs_notification(previous, summarise(verdict.status, verdict.findings)):
        return None
    return build_message(registry=request.registry, repository=request.repository,
                         digest=request.digest, tags=image.tags if image else (),
                         status=verdict.status, findings=verdict.findings, previous=previous)


def send_notification(services: Services, message: dict[str, Any]) -> None:
    send(message, queue=services.queue, webhook_url=setting("NOTIFY_WEBHOOK_URL"))
