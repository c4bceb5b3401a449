"""Push-to-result latency on the local stack (issue 5's goal: p50 < 5 s, p95 < 10 s).

    .venv/bin/python bench/bench_push_to_result.py [--count 20] [--size-mb 50] [--vary layer|app]

Starts its own local stack (Azurite, registry, functions host) on free loopback ports in a
temporary folder, publishes the demo advisory index, then pushes ``--count`` distinct images of
about ``--size-mb`` MB with skopeo. Each image is one platform, two layers: an Alpine base layer
(the demo image's apk database and os-release) plus incompressible random files, and an
application layer (Python package metadata). One small file changes per image so every digest
differs: with ``--vary layer`` (default) it sits in the big layer, so every image has a new
50 MB layer to download and read (a cold layer cache, the worst case); with ``--vary app`` it
sits in the small layer and the big layer comes from the layer cache after the first push (a
rebuilt application on an unchanged base, the usual case).

The clock starts when ``skopeo copy`` returns (the manifest PUT is done; the registry sends its
notification asynchronously after it) and stops when ``GET /api/images/{digest}`` first shows
an assessment. Images are pushed one after the other, each measured alone.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.local.demo import ApiClient, demo_layers, publish_demo_index
from scanning.local.services import AzuritePorts, free_port, skopeo_copy
from scanning.local.stack import RunningStack, StackConfig, up
from scanning.model import Platform
from scanning.ocibuild import LayerFiles, build_oci_layout

PLATFORM = Platform(os="linux", architecture="amd64")
REPOSITORY = "bench/push"
CHUNK = 5 * 1024 * 1024


def random_files(size_mb: int, seed: int) -> dict[str, bytes]:
    """``size_mb`` MB of incompressible content in 5 MB files."""
    rng = random.Random(seed)
    total = size_mb * 1024 * 1024
    return {f"opt/data/blob-{number:03d}.bin": rng.randbytes(min(CHUNK, total - offset))
            for number, offset in enumerate(range(0, total, CHUNK))}


def image_layers(number: int, bulk: dict[str, bytes], vary: str) -> list[LayerFiles]:
    base, app = demo_layers(PLATFORM)
    marker = {"etc/bench-build": f"build {number}\n".encode()}
    big = {**base, **bulk, **(marker if vary == "layer" else {})}
    small = {**app, **(marker if vary == "app" else {})}
    return [big, small]


def wait_assessed(client: ApiClient, digest: str, timeout: float = 120.0) -> float:
    """Poll until the image shows an assessment; the moment it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        image = client.get(f"images/{digest}")
        if image and image.get("status"):
            return time.perf_counter()
        time.sleep(0.05)
    raise TimeoutError(f"{digest} not assessed within {timeout:.0f}s")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def run(running: RunningStack, args: argparse.Namespace, latencies: list[float],
        statuses: list[str]) -> None:
    client = ApiClient(base_url=running.host.base_url, key=running.function_key)
    publish_demo_index(running.storage_connection_string)
    bulk = random_files(args.size_mb, seed=5)
    workdir = running.config.data_dir / "images"
    for number in range(args.count):
        layout = workdir / f"image-{number}"
        digest = build_oci_layout(layout, [(PLATFORM, image_layers(number, bulk, args.vary))],
                                  f"b{number}")
        size = sum(path.stat().st_size for path in (layout / "blobs" / "sha256").iterdir())
        skopeo_copy(f"oci:{layout}:b{number}",
                    f"docker://{running.registry_host}/{REPOSITORY}:b{number}")
        pushed = time.perf_counter()
        assessed = wait_assessed(client, digest)
        latencies.append(assessed - pushed)
        image = client.get(f"images/{digest}") or {}
        statuses.append(str(image.get("status")))
        print(f"  image {number + 1:>3}/{args.count}  {size / 1e6:5.1f} MB  "
              f"{digest[:19]}…  {image.get('status')}  {assessed - pushed:6.2f} s", flush=True)
        shutil.rmtree(layout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--vary", choices=("layer", "app"), default="layer",
                        help="where the file that changes per image lives (see above)")
    args = parser.parse_args()
    latencies: list[float] = []
    statuses: list[str] = []
    failure: list[BaseException] = []
    with tempfile.TemporaryDirectory(prefix="acr-scan-bench-") as folder:
        config = StackConfig(host_port=free_port(), registry_port=free_port(),
                             azurite=AzuritePorts.free(), data_dir=Path(folder))

        def on_ready(running: RunningStack) -> None:
            try:
                run(running, args, latencies, statuses)
            except BaseException as error:  # reported below, after the stack has stopped
                failure.append(error)
            finally:
                running.stop.set()

        up(config, on_ready=on_ready, out=lambda line: None)
    if failure:
        raise failure[0]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(f"push-to-result, {args.count} images of {args.size_mb} MB (vary {args.vary}): "
          f"p50 {p50:.2f} s (goal < 5 s), p95 {p95:.2f} s (goal < 10 s), "
          f"mean {statistics.mean(latencies):.2f} s, max {max(latencies):.2f} s; "
          f"statuses {sorted(set(statuses))}")
    return 0 if p50 < 5 and p95 < 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
