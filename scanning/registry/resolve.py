"""Which source serves a reference (``open_source``), and resolving a reference to one
``PlatformImage`` per platform, or an explicit unsupported / not-applicable result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from scanning.errors import (
    NotFound,
)
from scanning.layer_types import LayerInfo
from scanning.model import Platform
from scanning.registry.acr import (
    AcrSource,
)
from scanning.registry.base import (
    ATTESTATION_ANNOTATION,
    DOCKER_SCHEMA1,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_CONFIG_BYTES,
    MAX_INDEX_DEPTH,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
    FetchedManifest,
    ImageSource,
    _check_config,
    _check_descriptor,
    _expect,
    _optional,
    parse_json_document,
)
from scanning.registry.files import (
    DockerArchiveSource,
    OciLayoutSource,
)
from scanning.registry.http import (
    BasicCredentials,
    HttpRegistrySource,
)
from scanning.registry.reference import (
    ImageReference,
    ReferenceKind,
    is_acr,
)


def open_source(reference: ImageReference, *,
                credentials: BasicCredentials | None = None) -> ImageSource:
    """The source that serves ``reference``: ACR via the SDK, other registries over HTTP."""
    if reference.kind is ReferenceKind.OCI_LAYOUT:
        return OciLayoutSource(Path(reference.path))
    if reference.kind is ReferenceKind.DIRECTORY:
        from scanning.rootfs import DirectorySource  # it builds on this module

        return DirectorySource(Path(reference.path))
    if reference.kind is ReferenceKind.DOCKER_ARCHIVE:
        return DockerArchiveSource(Path(reference.path), tag=reference.tag,
                                   index=reference.archive_index)
    if is_acr(reference.registry) and credentials is None:
        from azure.identity import DefaultAzureCredential

        return AcrSource(reference.registry, reference.repository,
                         credential=DefaultAzureCredential())
    return HttpRegistrySource(reference.registry, reference.repository, credentials=credentials)


# ---------------------------------------------------------------------------------------------
# Resolving a reference to its platform images


class ResolveStatus(StrEnum):
    IMAGE = "image"
    UNSUPPORTED = "unsupported"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformImage:
    platform: Platform
    manifest_digest: str
    media_type: str
    config_digest: str
    layers: tuple[LayerInfo, ...]
    config_size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedManifest:
    digest: str
    platform: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedImage:
    reference: str
    digest: str
    media_type: str
    status: ResolveStatus
    reason: str = ""
    platforms: tuple[PlatformImage, ...] = ()
    skipped: tuple[SkippedManifest, ...] = ()


class _NotAnImage(Exception):
    def __init__(self, status: ResolveStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _classify(manifest: FetchedManifest) -> str:
    document = manifest.document
    media_type = manifest.media_type
    if media_type in ("", "application/json", "text/plain"):
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) else ""
    if document.get("schemaVersion") == 1 or media_type in SCHEMA1_TYPES:
        return DOCKER_SCHEMA1
    if media_type in INDEX_TYPES or media_type in MANIFEST_TYPES:
        return media_type
    if not media_type:  # OCI allows mediaType to be absent: tell index from manifest by shape
        if isinstance(document.get("manifests"), list):
            return OCI_INDEX
        if isinstance(document.get("config"), dict):
            return OCI_MANIFEST
    return media_type


def _is_layer_type(media_type: str) -> bool:
    return (media_type.startswith(("application/vnd.oci.image.layer.",
                                   "application/vnd.docker.image.rootfs."))
            and ".tar" in media_type)


def _check_top_level(manifest: FetchedManifest, what: str) -> None:
    _optional(manifest.document, "mediaType", str, "", what)
    _optional(manifest.document, "schemaVersion", int, "", what)


def _check_image_manifest(document: Mapping[str, Any], what: str) -> None:
    config = _check_descriptor(document.get("config"), "config", what)
    artifact_type = _optional(document, "artifactType", str, "", what)
    config_type = config.get("mediaType", "")
    if artifact_type and artifact_type not in IMAGE_CONFIG_TYPES:
        raise _NotAnImage(ResolveStatus.NOT_APPLICABLE, f"artifact of type {artifact_type}")
    if config_type not in IMAGE_CONFIG_TYPES:
        raise _NotAnImage(ResolveStatus.NOT_APPLICABLE,
                          f"artifact with config media type {config_type or '(none)'}")
    layers = _expect(document.get("layers"), list, "layers", what)
    for position, layer in enumerate(layers):
        layer_type = _check_descriptor(layer, f"layers[{position}]", what).get("mediaType", "")
        if not _is_layer_type(layer_type):
            raise _NotAnImage(ResolveStatus.NOT_APPLICABLE,
                              f"artifact with layer media type {layer_type or '(none)'}")


def clean_instruction(created_by: str) -> str:
    """The Dockerfile instruction from a config ``history[].created_by`` entry."""
    text = created_by.strip()
    if text.startswith("|"):
        # ``|2 A=1 B=2 /bin/sh -c cmd``: the classic builder's RUN with build arguments.
        words = text.split(" ")
        count = int(words[0][1:]) if words[0][1:].isdigit() else 0
        text = " ".join(words[1 + count:])
    if text.startswith("/bin/sh -c #(nop) "):
        return text[len("/bin/sh -c #(nop) "):].strip()
    if text.startswith("/bin/sh -c "):
        return f"RUN {text[len('/bin/sh -c '):]}"
    return text.removesuffix(" # buildkit")


def layer_instructions(config: Mapping[str, Any], layer_count: int) -> list[str]:
    """One instruction per layer from ``history`` (entries with ``empty_layer`` made none).

    When the history does not line up with the layers (squashed or hand-made images) no
    instruction is guessed.
    """
    history = config.get("history")
    if not isinstance(history, list):
        return [""] * layer_count
    made_layers = [entry for entry in history
                   if isinstance(entry, dict) and not entry.get("empty_layer")]
    if len(made_layers) != layer_count:
        return [""] * layer_count
    return [clean_instruction(str(entry.get("created_by", ""))) for entry in made_layers]


def _platform_of(entry: Mapping[str, Any]) -> Platform | None:
    """The declared platform of a descriptor ``_check_descriptor`` accepted."""
    platform = entry.get("platform")
    if platform is None:
        return None
    return Platform(os=_platform_field(platform, "os"),
                    architecture=_platform_field(platform, "architecture"),
                    variant=_platform_field(platform, "variant"))


def _platform_field(document: Mapping[str, Any], key: str) -> str:
    """A platform string (``os``, ``architecture``, ``variant``) of a document whose shape was
    checked (``_check_descriptor``, ``_check_config``: a field of another type is refused
    there, so ``str()`` of it never becomes a platform such as ``5/['x']/{'a': 1}``)."""
    value = document.get(key)
    return value if isinstance(value, str) else ""


def _matches(platform: Platform, wanted: Platform | None) -> bool:
    if wanted is None:
        return True
    return (platform.os == wanted.os and platform.architecture == wanted.architecture
            and (not wanted.variant or platform.variant == wanted.variant))


def _image(source: ImageSource, manifest: FetchedManifest,
           declared: Platform | None) -> PlatformImage:
    _check_image_manifest(manifest.document, f"manifest {manifest.digest}")
    config_descriptor = manifest.document["config"]
    config_digest = config_descriptor["digest"]
    config_bytes = source.fetch_blob(config_digest, MAX_CONFIG_BYTES)
    config = parse_json_document(config_bytes, f"config {config_digest}")
    _check_config(config, f"config {config_digest}")
    layers = manifest.document["layers"]
    instructions = layer_instructions(config, len(layers))
    platform = declared or Platform(
        os=_platform_field(config, "os") or "unknown",
        architecture=_platform_field(config, "architecture") or "unknown",
        variant=_platform_field(config, "variant"))
    return PlatformImage(
        platform=platform,
        manifest_digest=manifest.digest,
        media_type=manifest.media_type,
        config_digest=config_digest,
        config_size=config_descriptor.get("size", 0),
        layers=tuple(
            LayerInfo(digest=layer["digest"], size=layer.get("size", 0),
                      media_type=str(layer.get("mediaType", "")), instruction=instruction)
            for layer, instruction in zip(layers, instructions, strict=True)
        ),
    )


def resolve_image(source: ImageSource, reference: ImageReference, *,
                  platform: Platform | None = None) -> ResolvedImage:
    """Every platform image ``reference`` names (or the one matching ``platform``)."""
    top = source.fetch_manifest(reference.ref)
    _check_top_level(top, f"manifest {top.digest}")
    kind = _classify(top)
    result = ResolvedImage(reference=str(reference), digest=top.digest, media_type=kind,
                           status=ResolveStatus.IMAGE)
    if kind == DOCKER_SCHEMA1:
        return replace(result, status=ResolveStatus.UNSUPPORTED,
                        reason="Docker image manifest schema 1 is not supported (deprecated "
                               "format; re-push with a current client)")
    if kind in MANIFEST_TYPES:
        try:
            image = _image(source, top, None)
        except _NotAnImage as outcome:
            return replace(result, status=outcome.status, reason=outcome.reason)
        if not _matches(image.platform, platform):
            raise NotFound(f"{reference} is {image.platform}, not {platform}")
        return replace(result, platforms=(image,))
    if kind not in INDEX_TYPES:
        return replace(result, status=ResolveStatus.NOT_APPLICABLE,
                        reason=f"not an image (media type {kind or '(none)'})")
    images: list[PlatformImage] = []
    skipped: list[SkippedManifest] = []
    _walk_index(source, top, platform, images, skipped, depth=1)
    if not images:
        if platform is not None and not skipped:
            raise NotFound(f"{reference} has no {platform} image")
        if platform is not None and all("not requested" in s.reason for s in skipped):
            available = sorted({s.platform for s in skipped})
            raise NotFound(f"{reference} has no {platform} image (has {', '.join(available)})")
        reasons = "; ".join(sorted({s.reason for s in skipped})) or "empty index"
        return replace(result, status=ResolveStatus.NOT_APPLICABLE, skipped=tuple(skipped),
                        reason=f"index holds no image: {reasons}")
    return replace(result, platforms=tuple(images), skipped=tuple(skipped))


def _walk_index(source: ImageSource, index: FetchedManifest, wanted: Platform | None,
                images: list[PlatformImage], skipped: list[SkippedManifest], depth: int) -> None:
    what = f"index {index.digest}"
    entries = _expect(index.document.get("manifests"), list, "manifests", what)
    for position, raw_entry in enumerate(entries):
        entry = _check_descriptor(raw_entry, f"manifests[{position}]", what)
        digest = entry["digest"]
        declared = _platform_of(entry)
        label = str(declared) if declared else "(none)"
        annotations = entry.get("annotations") or {}
        if annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="attestation manifest"))
            continue
        if declared and declared.os == "unknown" and declared.architecture == "unknown":
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="unknown platform"))
            continue
        if declared and not _matches(declared, wanted):
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="platform not requested"))
            continue
        child = source.fetch_manifest(digest)
        _check_top_level(child, f"manifest {digest}")
        kind = _classify(child)
        if kind in INDEX_TYPES and depth < MAX_INDEX_DEPTH:
            _walk_index(source, child, wanted, images, skipped, depth + 1)
            continue
        if kind == DOCKER_SCHEMA1:
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason="schema 1 manifest (unsupported)"))
            continue
        if kind not in MANIFEST_TYPES:
            skipped.append(SkippedManifest(digest=digest, platform=label,
                                           reason=f"not an image ({kind or 'no media type'})"))
            continue
        try:
            image = _image(source, child, declared)
        except _NotAnImage as outcome:
            skipped.append(SkippedManifest(digest=digest, platform=label, reason=outcome.reason))
            continue
        if not _matches(image.platform, wanted):
            skipped.append(SkippedManifest(digest=digest, platform=str(image.platform),
                                           reason="platform not requested"))
            continue
        images.append(image)
