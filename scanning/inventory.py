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
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scanning.analyzers.os_release import DEBIAN_VERSION, PRECEDENCE, best_os
from scanning.analyzers.purl import qualify_purl
from scanning.errors import InventoryError
from scanning.layer_types import PATH_MAX, AnalyzedFile, LayerInfo, LayerResult, MessageList
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
# Errors and warnings an inventory keeps of each kind; the rest are counted.
MAX_INVENTORY_MESSAGES = 1000
# Path components the merge holds (about 240 bytes each): shared prefixes cost one node, but
# a hostile layer of deep distinct paths makes one per two bytes of path.
MAX_MERGE_NODES = 500_000


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


class _Node:
    """One path of the merged filesystem: analyzer outputs and/or a symlink, and its children.

    The image state is a tree by path component, so a whiteout, an opaque marker or a link
    removes a whole subtree by unlinking one node: cost proportional to the path, not to
    everything the image holds (a flat map needs a scan of every key per removal).
    """

    __slots__ = ("children", "link", "outputs")

    def __init__(self) -> None:
        # None until needed: most nodes are leaves without outputs, and an empty dict costs
        # 64 bytes per node of a layer with a million entries.
        self.children: dict[str, _Node] | None = None
        self.outputs: dict[str, _FileState] | None = None  # analyzer name -> state
        self.link: str | None = None


class _TooManyPaths(Exception):
    """Internal: the merge would hold more than ``MAX_MERGE_NODES`` path components."""


class _Tree:
    def __init__(self, max_nodes: int) -> None:
        self.root = _Node()
        # Every node ever made counts, removed ones too: the count bounds the merge's work as
        # well as its memory (about 240 bytes a node).
        self.nodes = 0
        self.max_nodes = max_nodes

    def find(self, path: str) -> _Node | None:
        node: _Node | None = self.root
        for part in path.split("/") if path else ():
            if node is None or node.children is None:
                return None
            node = node.children.get(part)
        return node

    def ensure(self, path: str) -> _Node:
        node = self.root
        for part in path.split("/"):
            if node.children is None:
                node.children = {}
            child = node.children.get(part)
            if child is None:
                self.nodes += 1
                if self.nodes > self.max_nodes:
                    raise _TooManyPaths
                child = node.children[part] = _Node()
            node = child
        return node

    def remove(self, path: str) -> None:
        """``path`` and everything under it."""
        parent_path, _, name = path.rpartition("/")
        parent = self.find(parent_path)
        if parent is not None and parent.children is not None:
            parent.children.pop(name, None)

    def clear_below(self, path: str) -> None:
        """Everything under ``path``, not ``path`` itself (an opaque directory)."""
        node = self.find(path)
        if node is not None:
            node.children = None

    def walk(self) -> Iterator[tuple[str, _Node]]:
        """Every node holding outputs or a link, with its path.

        Iterative, so a deep path cannot exhaust the stack; the path is joined only for nodes
        that hold something, so the cost is the nodes plus the length of the paths returned.
        """
        parts: list[str] = []
        pending: list[tuple[int, str, _Node]] = [(0, "", self.root)]
        while pending:
            depth, name, node = pending.pop()
            del parts[max(depth - 1, 0):]
            if depth:
                parts.append(name)
            if node.outputs or node.link is not None:
                yield "/".join(parts), node
            if node.children is not None:
                pending.extend((depth + 1, child_name, child)
                               for child_name, child in node.children.items())


def _apply_layer(tree: _Tree, index: int, result: LayerResult) -> None:
    # Whiteouts and opaque markers act on the layers below only (image-spec layer.md).
    for directory in result.opaque_dirs:
        tree.clear_below(directory)
    for path in result.whiteouts:
        tree.remove(path)
    for path, _target in (*result.symlinks, *result.hardlinks):
        # A link replaces whatever was at its path, a directory with all it held.
        tree.remove(path)
    for path, target in result.symlinks:
        tree.ensure(path).link = target
    by_path: dict[str, list[AnalyzedFile]] = {}
    for item in result.files:
        by_path.setdefault(item.path, []).append(item)
    for path, items in by_path.items():
        # A file replaces a symlink or file at its path; its packages keep the layer that
        # introduced them when the earlier file at this path listed them too.
        node = tree.ensure(path)
        previous = node.outputs or {}
        current: dict[str, _FileState] = {}
        node.outputs, node.link = current, None
        for item in items:
            earlier = previous.get(item.analyzer)
            introduced = {
                _package_key(package): (
                    earlier.introduced.get(_package_key(package), index) if earlier else index
                )
                for package in item.packages
            }
            current[item.analyzer] = _FileState(item, index, introduced)


def merge_layers(layers: Sequence[LayerInfo], results: Sequence[LayerResult], *,
                 max_nodes: int = MAX_MERGE_NODES) -> MergedImage:
    """Apply the layers bottom to top and return what the top of the image holds.

    Linear in the entries of all layers: every whiteout, link and file touches only the nodes
    on its own path. Past ``max_nodes`` path components the layers left are not merged and
    an error says so (the platform is ``partial``).
    """
    if len(layers) != len(results):
        raise ValueError("one result per layer is needed")
    tree = _Tree(max_nodes)
    errors = MessageList(MAX_INVENTORY_MESSAGES)
    warnings = MessageList(MAX_INVENTORY_MESSAGES)
    for index, result in enumerate(results):
        layer_digest = layers[index].digest
        try:
            _apply_layer(tree, index, result)
        except _TooManyPaths:
            errors.add(f"layer {layer_digest}: the image holds more than {max_nodes} "
                       "path components (merge cap); this layer and those above it were "
                       "merged in part or not at all")
            break
        for text in result.warnings:
            warnings.add(f"layer {layer_digest}: {text}")
        for text in result.errors:
            errors.add(f"layer {layer_digest}: {text}")
    files: dict[tuple[str, str], _FileState] = {}
    symlinks: dict[str, str] = {}
    for path, node in tree.walk():
        for analyzer, state in (node.outputs or {}).items():
            files[(path, analyzer)] = state
        if node.link is not None:
            symlinks[path] = node.link
    packages: list[Package] = []
    found_os: dict[str, OSInfo] = {}
    outputs: list[AnalyzedFile] = []
    for (path, analyzer), state in sorted(files.items()):
        outputs.append(state.output)
        if state.output.error:
            errors.add(
                f"analyzer {analyzer} failed on {path} "
                f"(layer {layers[state.layer_index].digest}): {state.output.error}"
            )
        # Entries skipped in a file still present at the top: the file is only partly read.
        for text in state.output.warnings:
            warnings.add(f"layer {layers[state.layer_index].digest}: {text}")
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
    # counts under the link's path too, so the precedence in best_os sees it. Only links at
    # the paths best_os reads matter: resolving every link would cost as much as the merge.
    for link in (path for path in (*PRECEDENCE, DEBIAN_VERSION) if path in symlinks):
        resolved = _resolve(link, tree.root)
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
        symlinks=symlinks,
        errors=errors.as_tuple(),
        warnings=warnings.as_tuple(),
    )


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
    way a container sees its own filesystem (never the host's). Returns ``None`` for a cycle,
    a chain longer than ``max_depth``, or a path or target longer than ``PATH_MAX`` (the
    kernel's ENAMETOOLONG).
    """
    tree = _Tree(sys.maxsize)  # the caller's own mapping: linear in its size, not capped
    for link, target in symlinks.items():
        tree.ensure(link).link = target
    return _resolve(path, tree.root, max_depth)


def _resolve(path: str, root: _Node, max_depth: int = MAX_SYMLINK_DEPTH) -> str | None:
    """``resolve_symlinks`` over the merged tree: O(parts processed), at most
    (``max_depth`` + 1) x ``PATH_MAX`` bytes of them.

    ``nodes`` follows ``resolved`` down the tree (``None`` once off it), so each component is
    one dictionary lookup, never a join of the whole prefix; ``pending`` is a deque, so a
    target's components go in front without copying the rest.
    """
    if len(path) > PATH_MAX:
        return None
    pending = deque(part for part in path.split("/") if part)
    resolved: list[str] = []
    nodes: list[_Node | None] = [root]
    followed = 0
    while pending:
        part = pending.popleft()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
                nodes.pop()
            continue
        parent = nodes[-1]
        node = parent.children.get(part) if parent is not None and parent.children else None
        if node is None or node.link is None:
            resolved.append(part)
            nodes.append(node)
            continue
        followed += 1
        target = node.link
        if followed > max_depth or len(target) > PATH_MAX:
            return None
        if target.startswith("/"):
            resolved, nodes = [], [root]
        pending.extendleft(reversed([piece for piece in target.split("/") if piece]))
    return "/".join(resolved)
