"""Benchmark of image analysis (a script, not a test).

    .venv/bin/python bench/bench_analysis.py [--size-mb 512] [--memory-size-mb 2048]

1. Throughput: generates an OCI layout of ``--size-mb`` uncompressed bytes (many small files,
   some large ones, package databases for dpkg, apk, Python and npm), then measures in the same
   run (a) merely inflating and hashing every layer blob (the physical limit: isal inflate +
   sha256) and (b) the full analysis with the real analyzers. Target: (b) >= 70% of (a).
2. Memory: a second image of ``--memory-size-mb`` uncompressed bytes is analysed in a child
   process; its peak RSS (``ru_maxrss``) must stay under 300 MB.
3. Warm cache: the first image is analysed twice with a layer cache; the second run must
   download no layer blob.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from isal import igzip, isal_zlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.analysis import analyze_image
from scanning.layercache import LocalLayerCache
from scanning.registry import OciLayoutSource, parse_reference

MiB = 1 << 20
WORDS = [f"{word}{n}" for n, word in enumerate(
    ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
     "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon") * 40)]


class TextPool:
    """Slices of 8 MiB of word soup: compresses about 3:1, like source trees and binaries."""

    def __init__(self, rng: random.Random) -> None:
        lines = []
        total = 0
        while total < 8 * MiB:
            line = " ".join(rng.choices(WORDS, k=12)) + f" {rng.getrandbits(64):x}\n"
            lines.append(line)
            total += len(line)
        self.data = "".join(lines).encode()
        self.rng = rng

    def take(self, size: int) -> bytes:
        start = self.rng.randrange(0, len(self.data) - size)
        return self.data[start:start + size]


def package_files(layer: int) -> dict[str, bytes]:
    """The base layer holds the OS databases; each layer adds Python and npm packages."""
    files: dict[str, bytes] = {}
    for n in range(50):
        files[f"usr/lib/python3/dist-packages/p{layer}x{n}-1.{n}.dist-info/METADATA"] = (
            f"Metadata-Version: 2.1\nName: p{layer}x{n}\nVersion: 1.{n}\n\n").encode()
        files[f"app/node_modules/m{layer}x{n}/package.json"] = json.dumps(
            {"name": f"m{layer}x{n}", "version": f"1.{n}.0"}).encode()
    if layer:
        return files
    status = "".join(
        f"Package: pkg{layer}-{n}\nStatus: install ok installed\nArchitecture: amd64\n"
        f"Version: 1.{n}-1\nSource: src{n}\n\n" for n in range(400))
    apk = "".join(f"P:apk{layer}-{n}\nV:1.{n}-r0\nA:x86_64\no:apk{n}\n\n" for n in range(200))
    files["etc/os-release"] = b"ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\n"
    files["var/lib/dpkg/status"] = status.encode()
    files["lib/apk/db/installed"] = apk.encode()
    return files


def write_layer(path: Path, pool: TextPool, size: int, layer: int) -> tuple[str, int, str]:
    """A gzipped layer of about ``size`` uncompressed bytes; returns (digest, size, diff_id)."""
    hasher = hashlib.sha256()
    with igzip.open(path, "wb", compresslevel=1) as compressed:
        plain = _HashingWriter(compressed, hasher)
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            written = 0
            for name, data in package_files(layer).items():
                _add(tar, name, data)
                written += len(data)
            n = 0
            while written < size:
                # 60% of the bytes in small files (1-16 KiB), the rest in 1-4 MiB files.
                small = pool.rng.random() < 0.985
                length = (pool.rng.randint(1024, 16 * 1024) if small
                          else pool.rng.randint(MiB, 4 * MiB))
                _add(tar, f"srv/l{layer}/d{n % 97}/f{n}.txt", pool.take(length))
                written += length
                n += 1
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"sha256:{digest}", path.stat().st_size, f"sha256:{hasher.hexdigest()}"


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: igzip.GzipFile, hasher: hashlib._Hash) -> None:
        self.sink = sink
        self.hasher = hasher

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hasher.update(data)
        self.sink.write(data)
        return len(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_image(root: Path, total_mb: int, layers: int, seed: int) -> int:
    """An OCI layout of ``layers`` layers; returns the uncompressed byte count."""
    pool = TextPool(random.Random(seed))
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors, diff_ids = [], []
    for layer in range(layers):
        temporary = root / f"layer{layer}.tmp"
        digest, size, diff_id = write_layer(temporary, pool, total_mb * MiB // layers, layer)
        temporary.rename(blobs / digest.split(":")[1])
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest, "size": size})
        diff_ids.append(diff_id)
    config = json.dumps({"os": "linux", "architecture": "amd64",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_digest = _put(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": descriptors}).encode()
    manifest_digest = _put(blobs, manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest)}]}))
    return sum(_uncompressed(blobs / d["digest"].split(":")[1]) for d in descriptors)


def _put(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def _uncompressed(path: Path) -> int:
    total = 0
    with igzip.open(path, "rb") as file:
        while chunk := file.read(4 * MiB):
            total += len(chunk)
    return total


def layer_paths(root: Path) -> Iterator[Path]:
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((root / "blobs/sha256" / digest).read_bytes())
    for layer in manifest["layers"]:
        yield root / "blobs/sha256" / layer["digest"].split(":")[1]


def inflate_and_hash(root: Path) -> float:
    """The physical limit: read each blob once, sha256 it, inflate it (isal), discard."""
    start = time.perf_counter()
    for path in layer_paths(root):
        hasher = hashlib.sha256()
        inflater = isal_zlib.decompressobj(wbits=31)
        with path.open("rb") as file:
            while chunk := file.read(MiB):
                hasher.update(chunk)
                data = inflater.decompress(chunk, 4 * MiB)
                while inflater.unconsumed_tail:
                    data = inflater.decompress(inflater.unconsumed_tail, 4 * MiB)
                del data
    return time.perf_counter() - start


def full_analysis(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    analysis = analyze_image(f"oci:{root}")
    elapsed = time.perf_counter() - start
    return elapsed, sum(len(inventory.packages) for inventory in analysis.inventories)


class CountingLayout(OciLayoutSource):
    downloads = 0

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        CountingLayout.downloads += 1
        return super().blob_chunks(digest)


def warm_cache_downloads(root: Path, cache_dir: Path) -> tuple[int, int]:
    cache = LocalLayerCache(cache_dir)
    reference = parse_reference(f"oci:{root}")
    CountingLayout.downloads = 0
    analyze_image(reference, cache=cache, source=CountingLayout(root))
    cold = CountingLayout.downloads
    CountingLayout.downloads = 0
    analyze_image(reference, cache=cache, source=CountingLayout(root))
    return cold, CountingLayout.downloads


def child_scan(root: str) -> None:
    elapsed, packages = full_analysis(Path(root))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "packages": packages, "peak_kib": peak_kib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--memory-size-mb", type=int, default=2048)
    parser.add_argument("--child-scan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_scan:
        child_scan(args.child_scan)
        return
    with tempfile.TemporaryDirectory(prefix="acr-scan-bench-") as temporary:
        work = Path(temporary)
        image = work / "image"
        print(f"building a {args.size_mb} MB image ...", flush=True)
        plain_bytes = build_image(image, args.size_mb, layers=5, seed=1)
        inflate_seconds = inflate_and_hash(image)
        analysis_seconds, packages = full_analysis(image)
        inflate_rate = plain_bytes / MiB / inflate_seconds
        analysis_rate = plain_bytes / MiB / analysis_seconds
        print(f"uncompressed: {plain_bytes / MiB:.0f} MiB, packages found: {packages}")
        print(f"inflate+hash: {inflate_rate:.0f} MiB/s ({inflate_seconds:.2f} s)")
        print(f"full analysis: {analysis_rate:.0f} MiB/s ({analysis_seconds:.2f} s) = "
              f"{100 * analysis_rate / inflate_rate:.0f}% of inflate+hash (target >= 70%)")
        cold, warm = warm_cache_downloads(image, work / "cache")
        print(f"layer downloads: cold cache {cold}, warm cache {warm} (target 0)")
        if args.memory_size_mb:
            big = work / "big"
            print(f"building a {args.memory_size_mb} MB image ...", flush=True)
            big_bytes = build_image(big, args.memory_size_mb, layers=4, seed=2)
            output = subprocess.run(
                [sys.executable, __file__, "--child-scan", str(big)], check=True,
                capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            print(f"memory: {big_bytes / MiB:.0f} MiB uncompressed analysed in "
                  f"{result['seconds']:.1f} s, peak RSS {result['peak_kib'] / 1024:.0f} MiB "
                  "(target < 300 MiB)")


if __name__ == "__main__":
    main()
