"""The analysis pipeline: reference -> platform images -> per-layer results -> inventories.

``analyze_image`` is what the CLI calls; the Durable Functions activities call the same three
steps separately (``resolve_image``, ``analyze_layer`` per layer as a fan-out, and
``build_inventory``), so each is a plain function of plain inputs.

Each layer is streamed once and its result cached by layer digest + analyzer-set version, so a
second image that shares base layers reads only its own layers, and a rescan of the same image
reads none. Within one scan a layer digest is read once even without a cache: a manifest may
list the same digest many times (one hostile manifest listed a 31 GiB layer 30 times), and
platforms of an index share layers. A layer that cannot be read fails its platform's inventory
with a status naming the layer; transient registry errors are retried here a few times, then
raised (retryable) so the caller's retry policy takes over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scanning.analyzers import ANALYZERS, Analyzer, analyzer_set_version
from scanning.errors import LayerError, ManifestError, NotFound, ScanError
from scanning.inventory import ImageInventory, InventoryStatus, merge_layers
from scanning.layer_types import LayerInfo, LayerResult
from scanning.layercache import LayerCache
from scanning.layers import LayerLimits, analyze_tar
from scanning.model import Platform
from scanning.registry import (
    BasicCredentials,
    ImageReference,
    ImageSource,
    PlatformImage,
    ResolvedImage,
    ResolveStatus,
    SkippedManifest,
    open_source,
    parse_reference,
    resolve_image,
)

log = logging.getLogger(__name__)

ANALYSIS_SCHEMA_VERSION = 1
LAYER_ATTEMPTS = 3
# Warnings kept in one platform's inventory (it is stored and re-read on every rescan): the
# first ones are listed, the rest counted, so a hostile image cannot bloat it.
MAX_INVENTORY_WARNINGS = 1000


class AnalysisStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerProgress:
    """One progress report: ``read_bytes`` of ``size`` read so far (``cached``: none needed)."""

    platform: str
    index: int  # 1-based
    count: int
    digest: str
    size: int
    read_bytes: int
    cached: bool = False
    done: bool = False


ProgressCallback = Callable[[LayerProgress], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageAnalysis:
    reference: str
    digest: str
    media_type: str
    status: AnalysisStatus
    analyzer_set_version: str
    reason: str = ""
    inventories: tuple[ImageInventory, ...] = ()
    skipped: tuple[SkippedManifest, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": ANALYSIS_SCHEMA_VERSION,
            "reference": self.reference,
            "digest": self.digest,
            "media_type": self.media_type,
            "status": self.status.value,
            "reason": self.reason,
            "analyzer_set_version": self.analyzer_set_version,
            "skipped": [
                {"digest": item.digest, "platform": item.platform, "reason": item.reason}
                for item in self.skipped
            ],
            "platforms": [inventory.to_json() for inventory in self.inventories],
        }


def _counted(chunks: Iterable[bytes], report: Callable[[int], None]) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        report(total)
        yield chunk


def analyze_layer(source: ImageSource, layer: LayerInfo, *,
                  analyzers: tuple[Analyzer, ...] = ANALYZERS,
                  cache: LayerCache | None = None, limits: LayerLimits | None = None,
                  on_bytes: Callable[[int], None] | None = None) -> tuple[LayerResult, bool]:
    """The analyzers' findings in one layer, from the cache when there: (result, was_cached).

    Raises ``LayerError`` for a layer that cannot be read, and retryable errors after
    ``LAYER_ATTEMPTS`` tries.
    """
    version = analyzer_set_version(analyzers)
    if cache is not None:
        cached = cache.get(layer.digest, version)
        if cached is not None:
            return cached, True
    for attempt in range(1, LAYER_ATTEMPTS + 1):
        try:
            chunks = source.blob_chunks(layer.digest)
            if on_bytes is not None:
                chunks = _counted(chunks, on_bytes)
            result = analyze_tar(chunks, digest=layer.digest, analyzers=analyzers,
                                analyzer_version=version, limits=limits,
                                expected_size=layer.size or None)
            break
        except ScanError as error:
            if not error.retryable or attempt == LAYER_ATTEMPTS:
                raise
            log.info("layer %s: %s; retrying (%d/%d)", layer.digest, error, attempt,
                     LAYER_ATTEMPTS)
    if cache is not None:
        cache.put(result)
    return result, False


def build_inventory(resolved: ResolvedImage, image: PlatformImage,
                    results: tuple[LayerResult, ...], *, analyzer_version: str,
                    failure: str = "") -> ImageInventory:
    """Merge the layer results of one platform image into its inventory.

    ``failure`` names the layer that could not be read: the inventory is then ``failed`` and
    lists what the layers before it held, for the record only.
    """
    layers = image.layers[:len(results)]
    merged = merge_layers(layers, results)
    if failure:
        status = InventoryStatus.FAILED
    elif merged.errors or merged.warnings:
        # Every warning names something not read: entries an analyzer skipped in a file still
        # present, or a file over an analyzer's cap. Never complete on what was not read.
        status = InventoryStatus.PARTIAL
    else:
        status = InventoryStatus.COMPLETE
    return ImageInventory(
        reference=resolved.reference,
        image_digest=resolved.digest,
        manifest_digest=image.manifest_digest,
        config_digest=image.config_digest,
        platform=image.platform,
        analyzer_set_version=analyzer_version,
        status=status,
        os=merged.os,
        packages=merged.packages,
        layers=image.layers,
        errors=((failure,) if failure else ()) + merged.errors,
        warnings=_bounded(merged.warnings),
    )


def _bounded(warnings: tuple[str, ...]) -> tuple[str, ...]:
    if len(warnings) <= MAX_INVENTORY_WARNINGS:
        return warnings
    unlisted = len(warnings) - MAX_INVENTORY_WARNINGS
    return (*warnings[:MAX_INVENTORY_WARNINGS], f"{unlisted} more warnings not listed")


def analyze_platform(source: ImageSource, resolved: ResolvedImage, image: PlatformImage, *,
                     analyzers: tuple[Analyzer, ...] = ANALYZERS,
                     cache: LayerCache | None = None, limits: LayerLimits | None = None,
                     progress: ProgressCallback | None = None,
                     outcomes: dict[str, LayerResult | ScanError] | None = None
                     ) -> ImageInventory:
    """One platform's inventory. ``outcomes`` is what each layer digest gave earlier in this
    scan (a result, or the error that made it unreadable), so no digest is read twice."""
    version = analyzer_set_version(analyzers)
    outcomes = {} if outcomes is None else outcomes
    results: list[LayerResult] = []
    failure = ""
    count = len(image.layers)
    for index, layer in enumerate(image.layers, start=1):
        def report(read: int, *, index: int = index, layer: LayerInfo = layer,
                   done: bool = False, cached: bool = False) -> None:
            if progress is not None:
                progress(LayerProgress(platform=str(image.platform), index=index, count=count,
                                       digest=layer.digest, size=layer.size, read_bytes=read,
                                       cached=cached, done=done))
        earlier = outcomes.get(layer.digest)
        try:
            if isinstance(earlier, ScanError):
                raise earlier
            if earlier is not None:
                result, cached = earlier, True
            else:
                result, cached = analyze_layer(source, layer, analyzers=analyzers, cache=cache,
                                               limits=limits, on_bytes=report)
                outcomes[layer.digest] = result
        except (LayerError, ManifestError, NotFound) as error:
            outcomes[layer.digest] = error
            failure = f"layer {index}/{count} {layer.digest}: {error}"
            log.warning("%s %s: %s", resolved.reference, image.platform, failure)
            break
        report(layer.size, done=True, cached=cached)
        results.append(result)
    return build_inventory(resolved, image, tuple(results), analyzer_version=version,
                           failure=failure)


def analyze_image(reference: str | ImageReference, *, platform: Platform | None = None,
                  analyzers: tuple[Analyzer, ...] = ANALYZERS, cache: LayerCache | None = None,
                  limits: LayerLimits | None = None, source: ImageSource | None = None,
                  credentials: BasicCredentials | None = None,
                  progress: ProgressCallback | None = None) -> ImageAnalysis:
    """Every platform's inventory of the image ``reference`` names (or just ``platform``)."""
    parsed = parse_reference(reference) if isinstance(reference, str) else reference
    owned = source is None
    active = source or open_source(parsed, credentials=credentials)
    version = analyzer_set_version(analyzers)
    try:
        resolved = resolve_image(active, parsed, platform=platform)
        if resolved.status is not ResolveStatus.IMAGE:
            status = (AnalysisStatus.UNSUPPORTED if resolved.status is ResolveStatus.UNSUPPORTED
                      else AnalysisStatus.NOT_APPLICABLE)
            return ImageAnalysis(reference=resolved.reference, digest=resolved.digest,
                                 media_type=resolved.media_type, status=status,
                                 analyzer_set_version=version, reason=resolved.reason,
                                 skipped=resolved.skipped)
        outcomes: dict[str, LayerResult | ScanError] = {}
        inventories = tuple(
            analyze_platform(active, resolved, image, analyzers=analyzers, cache=cache,
                             limits=limits, progress=progress, outcomes=outcomes)
            for image in resolved.platforms
        )
    finally:
        if owned:
            active.close()
    statuses = {inventory.status for inventory in inventories}
    if InventoryStatus.FAILED in statuses:
        status, reason = AnalysisStatus.FAILED, "; ".join(
            inventory.errors[0] for inventory in inventories
            if inventory.status is InventoryStatus.FAILED)
    elif InventoryStatus.PARTIAL in statuses:
        # A partial inventory has an error (a file or layer cap) or a warning (entries skipped).
        status, reason = AnalysisStatus.PARTIAL, "some files could not be analyzed: " + "; ".join(
            (inventory.errors or inventory.warnings)[0] for inventory in inventories
            if inventory.status is InventoryStatus.PARTIAL
            and (inventory.errors or inventory.warnings))
    else:
        status, reason = AnalysisStatus.COMPLETE, ""
    return ImageAnalysis(reference=resolved.reference, digest=resolved.digest,
                         media_type=resolved.media_type, status=status,
                         analyzer_set_version=version, reason=reason, inventories=inventories,
                         skipped=resolved.skipped)
