"""Hostile images: wall time and peak memory of each case of issue #14 (a script, not a test).

    .venv/bin/python bench/bench_hostile.py [--case NAME ...] [--keep DIR]

Each case writes its own input (an OCI layout or a docker-archive) in a temporary directory,
then a child process analyses it as ``python -m scanning sbom`` does (``analyze_image``, no
layer cache) and reports its wall time, peak RSS (``ru_maxrss``) and the outcome. Goals: every
case under 10 s and 300 MB. Children run with a 1 GiB address-space limit, so a case that
still explodes ends in MemoryError instead of pushing the shared machine into swap.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1 << 20
GiB = 1 << 30
CHILD_ADDRESS_SPACE = 1 * GiB
GOALS = (10.0, 300.0)  # seconds, MB


def tar_entry(name: str, data: bytes = b"", *, mode: int = 0o644, symlink: str = "") -> bytes:
    """One tar member (PAX format when a name or link needs it), data padded to 512 bytes."""
    info = tarfile.TarInfo(name)
    info.mode = mode
    if symlink:
        info.type = tarfile.SYMTYPE
        info.linkname = symlink
    else:
        info.size = len(data)
    padding = b"\0" * (-len(data) % 512)
    return info.tobuf(format=tarfile.PAX_FORMAT) + data + padding


def tar_of(entries: Iterable[bytes]) -> bytes:
    return b"".join(entries) + b"\0" * 1024


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_layout(root: Path, layers: list[bytes], *, config: dict[str, object] | None = None,
                 repeat: int = 1) -> str:
    """An OCI layout of one image whose manifest lists ``layers`` (each ``repeat`` times)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict[str, object]:
        (blobs / digest(data).split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest(data), "size": len(data)}

    layer_descriptors = [put(blob, "application/vnd.oci.image.layer.v1.tar+gzip")
                         for blob in layers] * repeat
    config_document = config or {"os": "linux", "architecture": "amd64"}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": put(json.dumps(config_document).encode(),
                              "application/vnd.oci.image.config.v1+json"),
                "layers": layer_descriptors}
    top = put(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{root}"


# --- the cases ------------------------------------------------------------------------------


def executables(root: Path) -> str:
    """100,000 tiny executable files in one layer."""
    layer = tar_of(tar_entry(f"bin/d{n // 1000}/tool{n}", b"#!/bin/sh\n", mode=0o755)
                   for n in range(100_000))
    return write_layout(root, [gzip.compress(layer, compresslevel=1)])


def links_over_files(root: Path) -> str:
    """20,000 wanted files, then 10,000 whiteouts and 10,000 symlinks over them."""
    count = 20_000
    files = tar_of(tar_entry(f"usr/lib/python3/site-packages/p{n}.dist-info/METADATA",
                             f"Name: p{n}\nVersion: 1.0\n".encode()) for n in range(count))
    site = "usr/lib/python3/site-packages"
    links = tar_of([*(tar_entry(f"{site}/.wh.p{n}.dist-info") for n in range(0, count, 2)),
                    *(tar_entry(f"{site}/p{n}.dist-info/METADATA", symlink="/dev/null")
                      for n in range(1, count, 2))])
    return write_layout(root, [gzip.compress(files, compresslevel=1),
                               gzip.compress(links, compresslevel=1)])


def long_link(root: Path) -> str:
    """One symlink (etc/os-release, so the merge resolves it) whose PAX linkpath is 1 MB
    (10^6 bytes: just under the 1 MiB extended-header cap)."""
    layer = tar_of([tar_entry("etc/os-release", symlink="a/" * 500_000)])
    return write_layout(root, [gzip.compress(layer)])


def apk_layout(root: Path, database: bytes) -> str:
    layer = tar_of([tar_entry("lib/apk/db/installed", database)])
    return write_layout(root, [gzip.compress(layer, compresslevel=1)])


def apk_records(root: Path) -> str:
    """An apk database of minimal records just under the analyzer's 64 MiB cap (7.4 M).

    The analyzer parses it whole: bounding it is the per-database record cap inside the
    analyzers (another change), not the layer reader or the merge.
    """
    record = b"P:a\nV:1\n\n"
    return apk_layout(root, record * ((64 * MiB - 1) // len(record)))


def apk_100k_packages(root: Path) -> str:
    """100,000 distinct apk packages: what the merge (attribution, purls, sorting) is given
    when an analyzer lets that many through."""
    return apk_layout(root, b"".join(b"P:a%d\nV:1\n\n" % n for n in range(100_000)))


def docker_archive_pax(root: Path) -> str:
    """A docker-archive whose outer tar starts with a 1.5 GiB PAX header (a sparse file)."""
    size = 3 * GiB // 2
    header = bytearray(tarfile.TarInfo("././@PaxHeader").tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = b"%011o\0" % size
    header[156:157] = b"x"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    path = root / "image.tar"
    with path.open("wb") as file:
        file.write(header)
        file.truncate(512 + size)  # zeros that take no disk
        file.seek(512 + size)
        file.write(tar_of([tar_entry("manifest.json", b"[]")]))
    return f"docker-archive:{path}"


def zstd_layer_listed_30_times(root: Path) -> str:
    """A 1 MB zstd layer holding one 31 GiB file of zeros, listed 30 times in the manifest."""
    chunk = 256 * MiB
    compressor = zstandard.ZstdCompressor(level=1)
    zeros = compressor.compress(b"\0" * chunk)  # one frame; frames concatenate
    count = 31 * GiB // chunk
    header = tarfile.TarInfo("zeros")
    header.size = count * chunk
    blob = (compressor.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + zeros * count
            + compressor.compress(b"\0" * 1024))
    return write_layout(root, [blob], repeat=30)


def symlinks(root: Path, count: int = 200_000) -> str:
    """200,000 symlinks in one layer: the entry kind that costs the most memory to keep."""
    layer = tar_of(tar_entry(f"usr/share/d{n // 1000}/link{n}", symlink=f"../target{n}")
                   for n in range(count))
    return write_layout(root, [gzip.compress(layer, compresslevel=1)])


def deep_distinct_paths(root: Path) -> str:
    """2,000 symlinks, each at its own path of 2,000 components (4,000 bytes): 8 MB of tar
    that would make 4 million merge nodes."""
    deep = "/".join(["a"] * 1995)
    layer = tar_of(tar_entry(f"x{n:04d}/{deep}", symlink="t") for n in range(2000))
    return write_layout(root, [gzip.compress(layer, compresslevel=1)])


def over_the_entry_cap(root: Path) -> str:
    """500,100 empty files in one layer: 100 past the default MAX_LAYER_ENTRIES (500,000)."""
    template = tarfile.TarInfo("d000/f0000000").tobuf(format=tarfile.USTAR_FORMAT)

    def entry(number: int) -> bytes:
        block = bytearray(template)
        block[0:13] = b"d%03d/f%07d" % (number // 10_000, number)
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        return bytes(block)

    layer = tar_of(entry(number) for number in range(500_100))
    return write_layout(root, [gzip.compress(layer, compresslevel=1)])


def short_macho(root: Path) -> str:
    """An 18-byte Mach-O executable."""
    layer = tar_of([tar_entry("usr/bin/tool", b"\xcf\xfa\xed\xfe" + bytes(14), mode=0o755)])
    return write_layout(root, [gzip.compress(layer)])


def non_string_platform(root: Path) -> str:
    """A config whose os, architecture and variant are a number, a list and an object."""
    layer = tar_of([tar_entry("etc/os-release", b"ID=alpine\n")])
    return write_layout(root, [gzip.compress(layer)],
                        config={"os": 5, "architecture": ["x"], "variant": {"a": 1}})


CASES: dict[str, Callable[[Path], str]] = {
    "executables-100k": executables,
    "links-over-files-20k": links_over_files,
    "symlink-1mb-target": long_link,
    "apk-7.4m-records": apk_records,
    "apk-100k-packages": apk_100k_packages,
    "docker-archive-1.5gib-pax": docker_archive_pax,
    "zstd-31gib-layer-x30": zstd_layer_listed_30_times,
    "symlinks-200k": symlinks,
    "entries-over-the-cap": over_the_entry_cap,
    "deep-distinct-paths": deep_distinct_paths,
    "macho-18-bytes": short_macho,
    "non-string-platform": non_string_platform,
}


# --- running --------------------------------------------------------------------------------


def child(reference: str) -> None:
    """Analyse ``reference`` and print one JSON line: seconds, peak RSS, outcome."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    from scanning.analysis import analyze_image
    from scanning.errors import ScanError

    started = time.perf_counter()
    try:
        analysis = analyze_image(reference)
        platforms = [(str(inventory.platform), inventory.status.value,
                      (inventory.errors or inventory.warnings or ("",))[0][:110])
                     for inventory in analysis.inventories]
        outcome = f"{analysis.status.value} {platforms}"
    except ScanError as error:
        outcome = f"{type(error).__name__}: {str(error)[-110:]}"
    except MemoryError:
        outcome = f"MemoryError (over the {CHILD_ADDRESS_SPACE >> 20} MiB address-space limit)"
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "outcome": outcome}))


def run_case(name: str, root: Path) -> dict[str, object]:
    """Build the input in one child and analyse it in another: ``ru_maxrss`` of a process
    counts the memory of the process it was forked from (Linux keeps the high-water mark
    across exec), so the parent stays small and never builds inputs itself."""
    root.mkdir(parents=True)
    built = subprocess.run([sys.executable, __file__, "--build", name, str(root)],
                           capture_output=True, text=True, check=True)
    reference = built.stdout.strip()
    process = subprocess.run([sys.executable, __file__, "--child", reference],
                             capture_output=True, text=True, check=False)
    if process.returncode != 0:
        return {"seconds": 0.0, "peak_mb": 0.0,
                "outcome": f"child exited {process.returncode}: {process.stderr[-300:]}"}
    report: dict[str, object] = json.loads(process.stdout.splitlines()[-1])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES),
                        help="run only these cases (repeatable)")
    parser.add_argument("--keep", type=Path, help="write the inputs here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child)
        return
    if arguments.build:
        name, root = arguments.build
        print(CASES[name](Path(root)))
        return
    names = arguments.case or list(CASES)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as temporary:
        base = arguments.keep or Path(temporary)
        print(f"{'case':28} {'seconds':>8} {'peak MB':>8}  outcome")
        for name in names:
            report = run_case(name, base / name)
            seconds, peak = float(str(report["seconds"])), float(str(report["peak_mb"]))
            met = "" if seconds < GOALS[0] and peak < GOALS[1] else "  (OVER GOAL)"
            print(f"{name:28} {seconds:8.2f} {peak:8.0f}  {report['outcome']}{met}",
                  flush=True)


if __name__ == "__main__":
    main()
