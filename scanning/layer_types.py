"""The layer types: what the image lists of a layer, and what one pass over one layer found.

``LayerInfo`` is a layer as a manifest lists it (the registry reads it); ``LayerResult`` is what
one streaming pass over it found (``scanning.layers`` writes it, the layer cache stores it, the
merge in ``scanning.inventory`` reads it). Both are plain data with a versioned JSON codec, so the
registry, the layer reader and the cache share them without importing the inventory.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanning.errors import InventoryError
from scanning.model import (
    OSInfo,
    Package,
    os_from_json,
    os_to_json,
    package_from_json,
    package_to_json,
)

LAYER_RESULT_SCHEMA_VERSION = 1
# Linux refuses longer paths and symlink targets (ENAMETOOLONG; limits.h PATH_MAX): no
# container can hold such a path, so none is worth keeping.
PATH_MAX = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzedFile:
    """One analyzer's output for one file of one layer (``error`` set when it failed)."""

    path: str
    analyzer: str
    packages: tuple[Package, ...] = ()
    os: OSInfo | None = None
    error: str = ""
    warnings: tuple[str, ...] = ()  # entries the analyzer skipped (``AnalyzerOutput.warnings``)


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerResult:
    """Everything one pass over one layer found that the merge needs."""

    digest: str
    analyzer_set_version: str
    compression: str
    compressed_size: int
    uncompressed_size: int
    entries: int
    files: tuple[AnalyzedFile, ...] = ()
    whiteouts: tuple[str, ...] = ()  # paths deleted from lower layers
    opaque_dirs: tuple[str, ...] = ()  # directories whose lower-layer content is hidden
    symlinks: tuple[tuple[str, str], ...] = ()  # (path, target as written in the tar)
    hardlinks: tuple[tuple[str, str], ...] = ()  # (path, target path inside the image)
    warnings: tuple[str, ...] = ()
    # What was not read (entries past a cap): the merge turns these into platform errors.
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": LAYER_RESULT_SCHEMA_VERSION,
            "digest": self.digest,
            "analyzer_set_version": self.analyzer_set_version,
            "compression": self.compression,
            "compressed_size": self.compressed_size,
            "uncompressed_size": self.uncompressed_size,
            "entries": self.entries,
            "files": [_analyzed_file_to_json(item) for item in self.files],
            "whiteouts": list(self.whiteouts),
            "opaque_dirs": list(self.opaque_dirs),
            "symlinks": [list(pair) for pair in self.symlinks],
            "hardlinks": [list(pair) for pair in self.hardlinks],
            "warnings": list(self.warnings),
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LayerResult:
        if data.get("schema_version") != LAYER_RESULT_SCHEMA_VERSION:
            raise InventoryError(f"layer result schema {data.get('schema_version')!r} unknown")
        try:
            return cls(
                digest=data["digest"],
                analyzer_set_version=data["analyzer_set_version"],
                compression=data["compression"],
                compressed_size=int(data["compressed_size"]),
                uncompressed_size=int(data["uncompressed_size"]),
                entries=int(data["entries"]),
                files=tuple(_analyzed_file_from_json(item) for item in data["files"]),
                whiteouts=tuple(data["whiteouts"]),
                opaque_dirs=tuple(data["opaque_dirs"]),
                symlinks=tuple((str(a), str(b)) for a, b in data["symlinks"]),
                hardlinks=tuple((str(a), str(b)) for a, b in data["hardlinks"]),
                warnings=tuple(data["warnings"]),
                errors=tuple(data.get("errors", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InventoryError(f"malformed layer result: {error}") from error


class MessageList:
    """At most ``limit`` messages, then one line counting the rest.

    A hostile layer can make one warning or analyzer error per entry (a million hard links to
    a file never read), and every message is kept in memory and stored with the inventory.
    """

    def __init__(self, limit: int) -> None:
        self._messages: list[str] = []
        self._limit = limit
        self._more = 0

    def add(self, message: str) -> None:
        if len(self._messages) < self._limit:
            self._messages.append(message)
        else:
            self._more += 1

    def as_tuple(self) -> tuple[str, ...]:
        if not self._more:
            return tuple(self._messages)
        return (*self._messages, f"... and {self._more} more not listed")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerInfo:
    """A layer as the image lists it, with the Dockerfile instruction that made it."""

    digest: str
    size: int
    media_type: str = ""
    instruction: str = ""


def _analyzed_file_to_json(item: AnalyzedFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": item.path,
        "analyzer": item.analyzer,
        "packages": [package_to_json(package) for package in item.packages],
    }
    if item.os is not None:
        data["os"] = os_to_json(item.os)
    if item.error:
        data["error"] = item.error
    if item.warnings:
        data["warnings"] = list(item.warnings)
    return data


def _analyzed_file_from_json(data: Mapping[str, Any]) -> AnalyzedFile:
    return AnalyzedFile(
        path=data["path"],
        analyzer=data["analyzer"],
        packages=tuple(package_from_json(item) for item in data["packages"]),
        os=os_from_json(data.get("os")),
        error=data.get("error", ""),
        # Optional: layer results cached before analyzers reported skipped entries have none.
        warnings=tuple(str(text) for text in data.get("warnings", ())),
    )


def normalize_member_path(name: str) -> str:
    """A tar member name as a path inside the image root: no leading ``/``, no ``..`` above it."""
    if not ("\\" in name or "//" in name or "/." in name or name.endswith("/")
            or name.startswith(("/", "./", "../")) or name in (".", "..")):
        return name  # already normal: the common case, once per tar entry
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return posixpath.join(*parts) if parts else ""
