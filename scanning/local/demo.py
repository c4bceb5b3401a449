"""The demo on the local stack: push the demo image, show what the function app received."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from typing import Any

from scanning.errors import ScanError
from scanning.local.ocilayout import write_demo_image
from scanning.local.services import skopeo_copy
from scanning.local.stack import RunningStack

DEMO_REPOSITORY = "demo/hello"
DEMO_TAG = "v1"


def _get_json(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"x-functions-key": key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_for_events(running: RunningStack, digests: set[str],
                    timeout: float = 60.0) -> list[dict[str, str]]:
    """Poll ``GET /api/events`` until every digest has been recorded."""
    url = f"{running.host.base_url}/api/events"
    deadline = time.monotonic() + timeout
    while True:
        events: list[dict[str, str]] = _get_json(url, running.function_key)
        if digests <= {event["digest"] for event in events}:
            return events
        if time.monotonic() > deadline:
            raise ScanError(f"the function app did not record {sorted(digests)} "
                            f"within {timeout:.0f}s; see {running.config.data_dir}")
        time.sleep(0.3)


def run_demo(running: RunningStack) -> None:
    layout = running.config.data_dir / "demo-image"
    shutil.rmtree(layout, ignore_errors=True)
    index = write_demo_image(layout, DEMO_TAG)
    reference = f"{running.registry_host}/{DEMO_REPOSITORY}:{DEMO_TAG}"
    print(f"\npushing {reference} (an index of two platforms, {index.digest}) with skopeo…")
    skopeo_copy(f"oci:{layout}:{DEMO_TAG}", f"docker://{reference}")
    manifest = json.loads((layout / "blobs" / "sha256" / index.digest.split(":")[1]).read_bytes())
    digests = {index.digest, *(child["digest"] for child in manifest["manifests"])}
    events = wait_for_events(running, digests)
    print("\nthe Event Grid function on_registry_event received the pushes, and scan_image "
          "recorded them:")
    for event in events:
        if event["digest"] in digests:
            print(f"  {event['media_type']:<46} {event['repository']}:{event['tag'] or '-'}"
                  f"  {event['digest'][:19]}…")
    base = running.host.base_url
    key = running.function_key
    print("\nwhere to look:")
    print(f"  curl -H 'x-functions-key: {key}' {base}/api/events")
    print(f"  curl -H 'x-functions-key: {key}' {base}/api/events/{index.digest}")
    print(f"  curl {base}/api/health")
    print(f"  curl -H 'x-functions-key: {key}' {base}/admin/host/status")
    print(f"  curl http://{running.registry_host}/v2/{DEMO_REPOSITORY}/tags/list")
    print("  .venv/bin/python -m scanning local status")
