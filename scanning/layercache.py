"""Per-layer analysis results, cached by layer digest + analyzer-set version.

A layer digest names its content, so what the analyzers found in it never changes until the
analyzers do: the key is ``<analyzer_set_version>/<algorithm>/<hex>.json.gz``. A new analyzer
version is a new prefix, so stale results are never read (and can be deleted by prefix).

Two implementations of one small interface: a local directory (the CLI's ``--cache DIR``, the
tests) and an Azure Blob container (``layercache``; the function app, Azurite locally). An
unreadable entry counts as a miss: the layer is read again and the entry rewritten.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from scanning.errors import InventoryError
from scanning.layer_types import LayerResult

log = logging.getLogger(__name__)

DEFAULT_CONTAINER = "layercache"


class LayerCache(Protocol):
    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None: ...

    def put(self, result: LayerResult) -> None: ...


def cache_key(layer_digest: str, analyzer_version: str) -> str:
    algorithm, _, hex_digest = layer_digest.partition(":")
    if not algorithm.isalnum() or not hex_digest.isalnum() or not analyzer_version.isalnum():
        raise ValueError(f"cannot key a cache entry by {layer_digest!r}/{analyzer_version!r}")
    return f"{analyzer_version}/{algorithm}/{hex_digest}.json.gz"


def encode(result: LayerResult) -> bytes:
    text = json.dumps(result.to_json(), sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), mtime=0)


def decode(data: bytes, layer_digest: str, analyzer_version: str) -> LayerResult | None:
    try:
        result = LayerResult.from_json(json.loads(gzip.decompress(data)))
    except (OSError, EOFError, ValueError, InventoryError) as error:
        log.warning("layer cache entry %s unreadable (%s); reading the layer again",
                    layer_digest, error)
        return None
    if result.digest != layer_digest or result.analyzer_set_version != analyzer_version:
        log.warning("layer cache entry %s holds another layer; ignored", layer_digest)
        return None
    return result


class LocalLayerCache:
    """A directory of gzipped JSON files; writes are atomic (temp file + rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, layer_digest: str, analyzer_version: str) -> LayerResult | None:
        path = self.directory / cache_key(layer_digest, analyzer_version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return decode(data, layer_digest, analyzer_version)

    def put(self, result: LayerResult) -> None:
        path = self.directory / cache_key(result.digest, result.analyzer_set_version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as temporary:
            temporary.write(encode(result))
        os.replace(temporary.name, path)
