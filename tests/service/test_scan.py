"""The parts of a scan that need no registry or store."""

from __future__ import annotations

from scanning.layer_types import LayerInfo
from scanning.model import Platform
from scanning.registry import PlatformImage, ResolvedImage, ResolveStatus
from scanning.service.scan import image_size

SHARED = LayerInfo(digest="sha256:" + "1" * 64, size=1000)


def platform(name: str, config: str, config_size: int, *layers: LayerInfo) -> PlatformImage:
    return PlatformImage(platform=Platform.parse(name), manifest_digest="sha256:" + config * 64,
                         media_type="m", config_digest="sha256:" + config * 64,
                         config_size=config_size, layers=layers)


def test_image_size_counts_each_config_and_layer_once() -> None:
    # Two platforms of an index sharing a base layer: the registry stores that layer once.
    resolved = ResolvedImage(
        reference="r.io/a@sha256:" + "f" * 64, digest="sha256:" + "f" * 64, media_type="i",
        status=ResolveStatus.IMAGE, platforms=(
            platform("linux/amd64", "a", 10, SHARED, LayerInfo(digest="sha256:" + "2" * 64,
                                                                size=200)),
            platform("linux/arm64", "b", 20, SHARED, LayerInfo(digest="sha256:" + "3" * 64,
                                                                size=300))))
    assert image_size(resolved) == 10 + 20 + 1000 + 200 + 300
