"""The ``match_keys`` column of an image row: what the weekly rescan compares against a newer
advisory index to prove an image unaffected without reading its inventory.

Stored per image as one Edm.Binary property (at most 64 KiB, Table service data model):
zlib-compressed JSON ``{"inventory": <digest>, "keys": [[ecosystem, name, version,
signature], …]}``, the keys sorted, one item per lookup the matcher makes for the image's
packages (``scanning.matching.package_lookups``) with the signature of its hits
(``lookup_signature``). ``inventory`` is the digest of the inventory document the lookups
were listed from (``scanning.service.evaluation.inventory_digest``): a re-match of that same
document can take its lookups from here instead of listing them again. Keys written without
one (and those stored before it was kept) are the bare list ``[[ecosystem, name, version,
signature], …]``. JSON, not tab-separated text: names and versions come from hostile images.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

MAX_BINARY = 64 * 1024
# Deflate inflates at most ~1032 times: 64 KiB could become ~66 MB. Ours are far smaller.
MAX_MATCH_KEYS_JSON = 16 * 1024 * 1024

SignedLookup = tuple[tuple[str, str, str], str]


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """Decoded match keys: the signed lookups, sorted, and the digest of the inventory
    document they were listed from ("" when unknown)."""

    signed: tuple[SignedLookup, ...]
    inventory: str = ""


def encode_match_keys(signed: Iterable[SignedLookup], inventory: str = "") -> bytes:
    """The property value, or b"" when it would not fit (the image is then re-matched on
    every index change). ``inventory``: the digest of the document the lookups
    were listed from ("" when unknown: the bare list is stored)."""
    items = sorted([ecosystem, name, version, signature]
                   for (ecosystem, name, version), signature in signed)
    raw = orjson.dumps({"inventory": inventory, "keys": items} if inventory else items)
    # Level 1: a third of level 6's time for ~15% more bytes (written for every re-match);
    # the slowest level when that would not fit, so a big image keeps what level 6 kept.
    data = zlib.compress(raw, 1)
    if len(data) > MAX_BINARY:
        data = zlib.compress(raw, 9)
    return data if len(data) <= MAX_BINARY else b""


def read_match_keys(data: bytes) -> MatchKeys | None:
    """The signed lookups and their inventory's digest, or None when absent or unreadable
    (re-match the image)."""
    if not data:
        return None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_MATCH_KEYS_JSON)
        if inflater.unconsumed_tail:
            return None
        items = orjson.loads(raw)
    except (zlib.error, orjson.JSONDecodeError):
        return None
    inventory = ""
    if type(items) is dict:
        named, items = items.get("inventory"), items.get("keys")
        if type(named) is not str or not named:
            return None
        inventory = named
    if type(items) is not list:
        return None
    signed: list[SignedLookup] = []
    # Read for every pulled image of every rescan: plain type checks, no generator per item.
    for item in items:
        if type(item) is not list or len(item) != 4:
            return None
        ecosystem, name, version, signature = item
        if not (type(ecosystem) is str and type(name) is str and type(version) is str
                and type(signature) is str):
            return None
        signed.append(((ecosystem, name, version), signature))
    return MatchKeys(tuple(signed), inventory)
