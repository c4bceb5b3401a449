"""Per-layer results and their merge into one image inventory.

``LayerResult`` is what one streaming pass over one layer found (``scanning.layers`` writes it,
the layer cache stores it). ``merge_layers`` applies the layers in order the way the OCI image
spec's changeset rules say (https://github.com/opencontainers/image-spec/blob/main/layer.md):
a whiteout ``.wh.NAME`` deletes NAME and everything under it from the layers below, an opaque
marker ``.wh..wh..opq`` hides everything below in its directory, and a later entry at the same
path replaces the earlier one. Packages follow the file they were found in: replaced file,
replaced packages; deleted file, deleted packages.

Attribution: a package gets the layer that last *changed* it. When a later layer rewrites a
package database but a package in it keeps its name, version and architecture, the package
keeps the earlier layer (the layer that introduced it), as Trivy and Syft report it.

``ImageInventory`` is the stored form of one platform of one image: it is written to Blob
Storage and re-matched against new advisories without pulling again, so its JSON is versioned
(``schema_version``) and only grows by optional fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scanning.analyzers.os_release import best_os
from scanning.analyzers.purl import qualify_purl
from scanning.errors import InventoryError
from scanning.layer_types import AnalyzedFile, LayerInfo, LayerResult
from scanning.model import (
    OSInfo,
    Package,
    Platform,
    os_from_json,
    os_to_json,
    package_from_json,
    package_to_json,
)

INVENTORY_SCHEMA_VERSION = 1
# Linux follows at most 40 symlinks in one lookup (path_resolution(7)); an image needs fewer.
MAX_SYMLINK_DEPTH = 40


class InventoryStatus(StrEnum):
    COMPLETE = "complete"  # every layer read, every analyzer succeeded
    PARTIAL = "partial"  # every layer read, but some file was not (or only partly) analyzed
    FAILED = "failed"  # a layer could not be read: the package list is not trustworthy


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInventory:
    """The packages of one platform of one image, each attributed to its layer."""

    reference: str
    image_digest: str  # what was asked for: the index digest for a multi-platform image
    manifest_digest: str  # this platform's manifest
    config_digest: str
    platform: Platform
    analyzer_set_version: str
    status: InventoryStatus
    os: OSInfo | None = None
    packages: tuple[Package, ...] = ()
    layers: tuple[LayerInfo, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": INVENTORY_SCHEMA_VERSION,
            "reference": self.reference,
            "image_digest": self.image_digest,
            "manifest_digest": self.manifest_digest,
            "config_digest": self.config_digest,
            "platform": str(self.platform),
            "analyzer_set_version": self.analyzer_set_version,
            "status": self.status.value,
            "os": os_to_json(self.os),
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "packages": [package_to_json(package) for package in self.packages],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageInventory:
        if data.get("schema_version") != INVENTORY_SCHEMA_VERSION:
            raise InventoryError(f"inventory schema {data.get('schema_version')!r} unknown")
        try:
            return cls(
                reference=data["reference"],
                image_digest=data["image_digest"],
                manifest_digest=data["manifest_digest"],
                config_digest=data["config_digest"],
                platform=Platform.parse(data["platform"]),
                analyzer_set_version=data["analyzer_set_version"],
                status=InventoryStatus(data["status"]),
                os=os_from_json(data.get("os")),
                layers=tuple(LayerInfo(**layer) for layer in data["layers"]),
                packages=tuple(package_from_json(item) for item in data["packages"]),
                errors=tuple(data.get("errors", ())),
                warnings=tuple(data.get("warnings", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InventoryError(f"malformed inventory: {error}") from error

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# The merge


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedImage:
    """The merged view of an image's layers: what the inventory is built from."""

    os: OSInfo | None
    packages: tuple[Package, ...]
    files: tuple[AnalyzedFile, ...]  # analyzer outputs of files still present at the top
    symlinks: Mapping[str, str]  # path -> target as written, for the final filesystem
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(slots=True)
class _FileState:
    output: AnalyzedFile
    layer_index: int
    # package identity -> index of the layer that introduced it (kept across rewrites)
    introduced: dict[tuple[str, str, str, str], int]


def _package_key(package: Package) -> tuple[str, str, str, str]:
    return (package.type.value, package.name, package.version, package.arch)


def _remove_tree(mapping: dict[str, Any], path: str, *, keep_root: bool) -> None:
    prefix = f"{path}/" if path else ""
    for key in [k for k in mapping if k.startswith(prefix) or (not keep_root and k == path)]:
        del mapping[key]


def merge_layers(layers: Sequence[LayerInfo], results: Sequence[LayerResult]) -> MergedImage:
    """Apply the layers bottom to top and return what the top of the image holds."""
    if len(layers) != len(results):
        raise ValueError("one result per layer is needed")
    files: dict[tuple[str, str], _FileState] = {}  # (path, analyzer) -> state
    symlinks: dict[str, str] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for index, result in enumerate(results):
        # Whiteouts and opaque markers act on the layers below only (image-spec layer.md).
        for directory in result.opaque_dirs:
            _remove_state_tree(files, directory, keep_root=True)
            _remove_tree(symlinks, directory, keep_root=True)
        for path in result.whiteouts:
            _remove_state_tree(files, path, keep_root=False)
            _remove_tree(symlinks, path, keep_root=False)
        for path, _target in (*result.symlinks, *result.hardlinks):
            # A link replaces whatever was at its path.
            _remove_state_tree(files, path, keep_root=False)
            symlinks.pop(path, None)
        for path, target in result.symlinks:
            symlinks[path] = target
        replaced_paths = {item.path for item in result.files}
        for path in replaced_paths:
            symlinks.pop(path, None)
        previous = {key: state for key, state in files.items() if key[0] in replaced_paths}
        for key in previous:
            del files[key]
        for item in result.files:
            earlier = previous.get((item.path, item.analyzer))
            introduced = {
                _package_key(package): (
                    earlier.introduced.get(_package_key(package), index) if earlier else index
                )
                for package in item.packages
            }
            files[(item.path, item.analyzer)] = _FileState(item, index, introduced)
        warnings.extend(f"layer {layers[index].digest}: {text}" for text in result.warnings)
    packages: list[Package] = []
    found_os: dict[str, OSInfo] = {}
    outputs: list[AnalyzedFile] = []
    for (path, analyzer), state in sorted(files.items()):
        outputs.append(state.output)
        if state.output.error:
            errors.append(
                f"analyzer {analyzer} failed on {path} "
                f"(layer {layers[state.layer_index].digest}): {state.output.error}"
            )
        # Entries skipped in a file still present at the top: the file is only partly read.
        warnings.extend(
            f"layer {layers[state.layer_index].digest}: {text}" for text in state.output.warnings
        )
        if state.output.os is not None:
            found_os[path] = state.output.os
        for package in state.output.packages:
            layer = layers[state.introduced[_package_key(package)]]
            packages.append(
                dataclasses.replace(
                    package, layer_digest=layer.digest, layer_instruction=layer.instruction
                )
            )
    # A release file reached through a symlink (etc/os-release -> ../usr/lib/os-release)
    # counts under the link's path too, so the precedence in best_os sees it.
    for link in symlinks:
        resolved = resolve_symlinks(link, symlinks)
        if resolved is not None and resolved in found_os and link not in found_os:
            found_os[link] = found_os[resolved]
    image_os = best_os(found_os)
    qualified = tuple(
        sorted(
            (qualify_purl(package, image_os) for package in _dedupe(packages)),
            key=lambda p: (p.type.value, p.name, p.version, p.arch, p.path),
        )
    )
    return MergedImage(
        os=image_os,
        packages=qualified,
        files=tuple(outputs),
        symlinks=dict(symlinks),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _remove_state_tree(files: dict[tuple[str, str], _FileState], path: str, *,
                       keep_root: bool) -> None:
    prefix = f"{path}/" if path else ""
    doomed = [
        key for key in files
        if key[0].startswith(prefix) or (not keep_root and key[0] == path)
    ]
    for key in doomed:
        del files[key]


def _dedupe(packages: Iterable[Package]) -> list[Package]:
    seen: set[Package] = set()
    unique = []
    for package in packages:
        if package not in seen:
            seen.add(package)
            unique.append(package)
    return unique


def resolve_symlinks(path: str, symlinks: Mapping[str, str],
                     max_depth: int = MAX_SYMLINK_DEPTH) -> str | None:
    """``path`` with every symlink in it followed, inside the image root only.

    Absolute targets are taken relative to the image root, and ``..`` stops at the root, the
    way a container sees its own filesystem (never the host's). Returns ``None`` for a cycle
    or a chain longer than ``max_depth``.
    """
    parts = [part for part in path.split("/") if part]
    resolved: list[str] = []
    followed = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        target = symlinks.get(candidate)
        if target is None:
            resolved.append(part)
            continue
        followed += 1
        if followed > max_depth:
            return None
        if target.startswith("/"):
            resolved = []
        parts = [piece for piece in target.split("/") if piece] + parts
    return "/".join(resolved)
