"""``docker save`` archives written by the tests: read by offset, outer headers bounded."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.errors import ManifestError
from scanning.ocibuild import layer_tar
from scanning.registry import DockerArchiveSource

LAYER = layer_tar({"etc/os-release": b"ID=alpine\nVERSION_ID=3.19.1\n"})
CONFIG = json.dumps({"os": "linux", "architecture": "amd64",
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def archive_bytes(*, pax_path: str = "") -> bytes:
    """A legacy ``docker save`` tar: manifest.json, the config and ``<id>/layer.tar``."""
    manifest = json.dumps([{"Config": "config.json", "Layers": ["abc/layer.tar"]}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("manifest.json", manifest), ("config.json", CONFIG),
                           ("abc/layer.tar", LAYER)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax_path and name == "abc/layer.tar":
                info.pax_headers = {"comment": pax_path}
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def layer_digest() -> str:
    return f"sha256:{hashlib.sha256(LAYER).hexdigest()}"


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_docker_archive_layer_is_read_back_whole(tmp_path: Path, compress: bool) -> None:
    data = archive_bytes(pax_path="x" * 300)
    path = tmp_path / "image.tar"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    source = DockerArchiveSource(path)
    try:
        layers = source.fetch_manifest("").document["layers"]
        assert (layers, b"".join(source.blob_chunks(layer_digest()))) == (
            [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar",
              "size": len(LAYER), "digest": layer_digest()}], LAYER)
    finally:
        source.close()


def test_outer_pax_header_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # A header block declaring a 1.5 GiB PAX record set, and nothing after it: tarfile would
    # read it whole into memory.
    header = bytearray(tarfile.TarInfo("././@PaxHeader").tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = b"%011o\0" % (3 << 29)
    header[156:157] = b"x"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header[:512])
    path = tmp_path / "image.tar"
    path.write_bytes(bytes(header[:512]))
    with pytest.raises(ManifestError) as raised:
        DockerArchiveSource(path)
    assert str(raised.value) == (
        f"{path} is not a readable docker archive: outer tar: extended tar header of "
        "1610612736 bytes exceeds the cap of 1048576")


def test_truncated_member_is_a_manifest_error(tmp_path: Path) -> None:
    data = archive_bytes()
    path = tmp_path / "image.tar"
    path.write_bytes(data[:data.index(LAYER) + 100])
    with pytest.raises(ManifestError, match=r"abc/layer\.tar is truncated$"):
        DockerArchiveSource(path)


class CountingArchive(DockerArchiveSource):
    """Records every member read."""

    def __init__(self, path: Path) -> None:
        self.reads: list[str] = []
        super().__init__(path)

    def _member_chunks(self, name: str) -> Iterator[bytes]:
        self.reads.append(name)
        return super()._member_chunks(name)


def test_opening_a_legacy_archive_reads_each_layer_once(tmp_path: Path) -> None:
    # A second read of a member of a gzipped archive seeks back and inflates from the start.
    path = tmp_path / "image.tar.gz"
    path.write_bytes(gzip.compress(archive_bytes(), mtime=0))
    source = CountingArchive(path)
    source.close()
    assert source.reads == ["manifest.json", "config.json", "abc/layer.tar"]
