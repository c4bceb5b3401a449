"""A hostile image fails its own scan, with a reason naming the layer, while a good image
pushed at the same time is assessed as usual."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from scanning.model import Platform
from scanning.ocibuild import build_oci_layout, layer_tar
from tests.integration.helpers import (
    App,
    alpine_layers,
    build_alpine_image,
    push_raw_image,
)

pytestmark = pytest.mark.integration

AMD64 = Platform(os="linux", architecture="amd64")


def _noise(size: int) -> bytes:
    """Incompressible, deterministic bytes: the gzip stream is as long as the content."""
    blocks = (hashlib.sha256(str(number).encode()).digest() for number in range(size // 32))
    return b"".join(blocks)


def _truncated_gzip(plain: bytes) -> bytes:
    compressed = gzip.compress(plain, mtime=0)
    return compressed[:len(compressed) // 2]


def _corrupt_deflate(plain: bytes) -> bytes:
    compressed = bytearray(gzip.compress(plain, mtime=0))
    # Inside the deflate stream, past the 10-byte gzip header (RFC 1952 2.3).
    for offset in range(200, 260):
        compressed[offset] ^= 0xFF
    return bytes(compressed)


def _garbage_tar(plain: bytes) -> bytes:
    return gzip.compress(b"\xff" * 512 + plain, mtime=0)


# kind -> (make the layer from a plain tar, what the scan says after the layer's digest)
HOSTILE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated-gzip": (_truncated_gzip, " cannot be read: Compressed file ended before the "
                       "end-of-stream marker was reached"),
    "corrupt-deflate": (_corrupt_deflate, " cannot be read: CRC check failed 2949237188 != "
                        "2124413897"),
    "garbage-tar": (_garbage_tar, ": tar header checksum mismatch (not a tar, or corrupt)"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_layer_fails_its_own_scan_only(app: App, tmp_path: Path, kind: str) -> None:
    base, _ = alpine_layers(app.prefix)
    hostile_plain = layer_tar({"srv/data.bin": _noise(64 * 1024)})
    base_plain = layer_tar(base)
    make_layer, error = HOSTILE[kind]
    hostile_layer = make_layer(hostile_plain)
    hostile = push_raw_image(
        app.registry, f"hostile/{kind}", "v1",
        layers=[gzip.compress(base_plain, mtime=0), hostile_layer],
        diff_ids=[f"sha256:{hashlib.sha256(data).hexdigest()}"
                  for data in (base_plain, hostile_plain)])
    good = build_alpine_image(tmp_path / "good", f"{app.prefix}/good/{kind}")
    app.push(tmp_path / "good", f"good/{kind}", "v1")
    hostile_scan = app.wait_for_scan(hostile)
    good_scan = app.wait_for_scan(good)
    hostile_digest = f"sha256:{hashlib.sha256(hostile_layer).hexdigest()}"
    _, hostile_image = app.api(f"images/{hostile}")
    _, good_image = app.api(f"images/{good}")
    assert (hostile_scan.output["status"], hostile_scan.output["billed"],
            hostile_image["status"], good_scan.output["status"], good_image["status"]) == (
        "failed", False, "failed", "unhealthy", "unhealthy")
    assert hostile_image["reason"] == (
        f"linux/amd64: layer 2/2 {hostile_digest}: layer {hostile_digest}{error}")


def test_layer_over_the_entry_cap_makes_a_clean_image_partial(
        app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_LAYER_ENTRIES", "5")
    base, _ = alpine_layers(app.prefix)
    release_only = {"etc/os-release": base["etc/os-release"]}
    many = {f"srv/f{number}": b"" for number in range(10)}
    digest = build_oci_layout(tmp_path / "capped", [(AMD64, [release_only, many])], "v1")
    app.push(tmp_path / "capped", "hostile/capped", "v1")
    scan = app.wait_for_scan(digest)
    _, image = app.api(f"images/{digest}")
    assert (scan.output["status"], image["status"]) == ("partial", "partial")
