"""The demo on the local stack: the real loop, from a push to an assessed, billed image.

``python -m scanning local demo`` (what ``make demo`` runs) starts the stack, then:

1. compiles the demo advisory records (``scanning/advisories/demo_records/``) and publishes the
   index to Azurite Blob Storage with ``publish_index``, as the daily refresh does;
2. builds a two-platform image (linux/amd64, linux/arm64/v8) from the files under
   ``demo_image/``: an Alpine 3.11 base layer whose packages the demo records flag, and an
   application layer with the ``requests`` PyPI package;
3. pushes it with skopeo: the registry's notifications reach ``on_registry_event``, which
   starts the scan (the demo never calls the scan itself);
4. polls ``GET /api/images/{digest}`` until the image is assessed and prints its status, the
   findings by severity, the billing record and the API calls to try;
5. pushes the same image under a second tag and shows that billing still has one record.

Then the stack keeps running until Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanning.advisories.demo import build_demo_index
from scanning.errors import DemoError
from scanning.events import parse_time
from scanning.local.services import skopeo_copy
from scanning.local.stack import RunningStack
from scanning.model import Platform
from scanning.ocibuild import LayerFiles, build_oci_layout
from scanning.store.advisory_index import publish_index
from scanning.store.clients import StorageClients

DEMO_REPOSITORY = "demo/alpine-app"
DEMO_TAG = "v1"
SECOND_TAG = "v1-again"
DEMO_IMAGE_DIR = Path(__file__).resolve().parent / "demo_image"
DEMO_PLATFORMS = (Platform(os="linux", architecture="amd64"),
                  Platform(os="linux", architecture="arm64", variant="v8"))
# The apk database names the machine architecture (``A:`` field); the files are written for
# x86_64 and rewritten for the other platforms.
_APK_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_SEVERITY_ORDER = ("Critical", "High", "Medium", "Low")
SCAN_TIMEOUT_SECONDS = 120.0


# --------------------------------------------------------------------------- the image


def _read_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def demo_layers(platform: Platform) -> list[LayerFiles]:
    """The image's two layers for ``platform``: the Alpine base, then the application."""
    base = _read_tree(DEMO_IMAGE_DIR / "base")
    arch = _APK_ARCH.get(platform.architecture, platform.architecture)
    database = "lib/apk/db/installed"
    base[database] = base[database].replace(b"A:x86_64\n", f"A:{arch}\n".encode())
    return [base, _read_tree(DEMO_IMAGE_DIR / "app")]


def build_demo_image(directory: Path, tag: str = DEMO_TAG) -> str:
    """Write the demo image (an index of ``DEMO_PLATFORMS``) as an OCI layout; its digest."""
    return build_oci_layout(directory,
                            [(platform, demo_layers(platform)) for platform in DEMO_PLATFORMS],
                            tag)


def publish_demo_index(connection_string: str) -> int:
    """Compile the demo records and publish the index to Blob Storage; how many advisories."""
    with tempfile.TemporaryDirectory(prefix="acr-scan-demo-") as workdir:
        path = Path(workdir) / "index.idx"
        build_demo_index(path)
        service = StorageClients.from_connection_string(connection_string).blob_service()
        return len(publish_index(service, path).index.advisories)


# --------------------------------------------------------------------------- the API


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiClient:
    base_url: str  # http://127.0.0.1:7071
    key: str

    def get(self, route: str, **query: str) -> Any | None:
        """``GET /api/<route>``: the JSON body, or None for 404."""
        url = f"{self.base_url}/api/{route}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers={"x-functions-key": self.key})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise DemoError(f"GET {url} answered {error.code}: "
                            f"{error.read().decode(errors='replace')}") from error
        except OSError as error:
            raise DemoError(f"GET {url} failed: {error}") from error


def assessed_since(image: dict[str, Any] | None, since: datetime) -> bool:
    """True when ``image`` (``GET images/{digest}``) holds an assessment made at or after
    ``since`` (the local Azurite may keep one from an earlier demo run)."""
    if not image or not image.get("status") or not image.get("assessedAt"):
        return False
    return parse_time(str(image["assessedAt"])) >= since


def wait_for_assessment(client: ApiClient, digest: str, since: datetime, *,
                        timeout: float = SCAN_TIMEOUT_SECONDS,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``GET /api/images/{digest}`` until it shows an assessment made since ``since``."""
    deadline = clock() + timeout
    while True:
        image = client.get(f"images/{digest}")
        if assessed_since(image, since):
            assert image is not None
            return dict(image)
        if clock() > deadline:
            state = image.get("status") if image else "not recorded"
            raise DemoError(f"image {digest} was not assessed within {timeout:.0f}s "
                            f"(last seen: {state}); see the host log and .local/")
        sleep(0.2)


def billed_records(client: ApiClient, digest: str, month: str) -> list[dict[str, Any]]:
    """The billing records of ``digest`` in ``month`` (every page)."""
    records: list[dict[str, Any]] = []
    query = {"month": month}
    while True:
        page = client.get("billing", **query) or {}
        records += [item for item in page.get("value", []) if item.get("digest") == digest]
        token = page.get("continuationToken")
        if not token:
            return records
        query = {"month": month, "continuationToken": str(token)}


# --------------------------------------------------------------------------- printing


def finding_lines(image: dict[str, Any]) -> list[str]:
    """The image's active findings grouped by severity, one line per (advisory, package),
    with the platforms it was found on."""
    platforms: dict[tuple[str, ...], list[str]] = defaultdict(list)
    details: dict[tuple[str, ...], str] = {}
    disabled = 0
    for item in image.get("subAssessments", []):
        properties = item["properties"]
        if properties["status"]["code"] != "Unhealthy":
            disabled += 1
            continue
        data = properties["additionalData"]
        software = data["softwareDetails"]
        severity = properties["status"]["severity"]
        key: tuple[str, ...] = (
            severity, data["vulnerabilityDetails"]["advisoryId"], software["packageName"],
            software["version"], software["fixedVersion"] or "")
        platforms[key].append(data["artifactDetails"]["platform"])
        details[key] = properties["remediation"]
    lines: list[str] = []
    for severity in _SEVERITY_ORDER:
        keys = sorted(key for key in platforms if key[0] == severity)
        if not keys:
            continue
        lines.append(f"  {severity} ({len(keys)})")
        for key in keys:
            _, advisory, package, installed, fixed = key
            lines.append(f"    {advisory:<18} {package:<14} {installed} -> {fixed or '(no fix)'}"
                         f"   [{', '.join(sorted(platforms[key]))}]")
            lines.append(f"      remediation: {details[key]}")
    if disabled:
        lines.append(f"  ({disabled} findings disabled by rules)")
    return lines or ["  no findings"]


def summary_lines(image: dict[str, Any], seconds: float) -> list[str]:
    counts = image.get("counts", {})
    platforms = ", ".join(
        f"{detail['platform']} ({(detail.get('os') or {}).get('prettyName', 'unknown OS')})"
        for detail in image.get("platformDetails", []))
    return [
        f"  image     {image['registry']}/{image['repository']}@{image['digest']}",
        f"  tags      {', '.join(image.get('tags', []))}",
        f"  platforms {platforms}",
        f"  status    {image['status']}   (assessed {seconds:.1f}s after skopeo returned)",
        f"  counts    {json.dumps(counts, sort_keys=True)}",
    ]


def billing_lines(records: list[dict[str, Any]]) -> list[str]:
    return [f"  {record['billedAt']}  {record['repository']}@{record['digest'][:19]}…  "
            f"trigger={record['trigger']}  {record['unitPrice']} {record['currency']}"
            for record in records] or ["  (no billing record)"]


def try_lines(client: ApiClient, registry_host: str, digest: str) -> list[str]:
    api = f"{client.base_url}/api"
    header = f"-H 'x-functions-key: {client.key}'"
    return [
        f"  dashboard: {client.base_url}/?code={urllib.parse.quote(client.key, safe='')}",
        f"  curl {header} {api}/images/{digest}",
        f"  curl {header} '{api}/images?status=unhealthy'",
        f"  curl {header} '{api}/findings?package=musl&fixStatus=fixed'",
        f"  curl {header} '{api}/findings?severity=critical'",
        f"  curl {header} '{api}/scans?digest={digest}'",
        f"  curl {header} {api}/billing",
        f"  curl {header} {api}/rules",
        f"  curl http://{registry_host}/v2/{DEMO_REPOSITORY}/tags/list",
        "  .venv/bin/python -m scanning local status",
    ]


# --------------------------------------------------------------------------- the demo


def _wait_for_event_grid_events(running: RunningStack, count: int, timeout: float = 30.0) -> None:
    """The registry notifies asynchronously after the manifest PUT: wait until the host has
    delivered ``count`` Event Grid events in total."""
    deadline = time.monotonic() + timeout
    while running.host.counters.event_grid_events < count:
        if time.monotonic() > deadline:
            raise DemoError(f"the registry sent {running.host.counters.event_grid_events} "
                            f"push events, expected {count}, within {timeout:.0f}s")
        time.sleep(0.1)


def run_demo(running: RunningStack, out: Callable[[str], None] = print) -> None:
    client = ApiClient(base_url=running.host.base_url, key=running.function_key)
    out("\n[1/5] advisory index: compiling the demo records and publishing them to Azurite "
        "Blob Storage (as the daily refresh does)…")
    advisories = publish_demo_index(running.storage_connection_string)
    out(f"  published {advisories} advisories")

    layout = running.config.data_dir / "demo-image"
    shutil.rmtree(layout, ignore_errors=True)
    digest = build_demo_image(layout)
    reference = f"{running.registry_host}/{DEMO_REPOSITORY}:{DEMO_TAG}"
    out(f"\n[2/5] built {DEMO_REPOSITORY}:{DEMO_TAG} from {DEMO_IMAGE_DIR}: an index of "
        f"{', '.join(str(platform) for platform in DEMO_PLATFORMS)}")
    out(f"  {digest}")

    out(f"\n[3/5] pushing {reference} with skopeo; the registry's push event starts the scan…")
    events_before = running.host.counters.event_grid_events
    started = datetime.now(UTC)
    skopeo_copy(f"oci:{layout}:{DEMO_TAG}", f"docker://{reference}")
    pushed = time.monotonic()
    image = wait_for_assessment(client, digest, started)
    seconds = time.monotonic() - pushed

    out("\n[4/5] the assessment (GET /api/images/{digest}):")
    for line in summary_lines(image, seconds):
        out(line)
    out("  findings by severity:")
    for line in finding_lines(image):
        out(line)
    month = f"{started:%Y-%m}"
    billed = billed_records(client, digest, month)
    out(f"  billing (GET /api/billing?month={month}):")
    for line in billing_lines(billed):
        out(line)

    second = f"{running.registry_host}/{DEMO_REPOSITORY}:{SECOND_TAG}"
    out(f"\n[5/5] pushing the same image again as {second}…")
    # One event per child manifest and one for the index, for each push.
    pushes_per_image = len(DEMO_PLATFORMS) + 1
    _wait_for_event_grid_events(running, events_before + pushes_per_image)
    skopeo_copy(f"oci:{layout}:{DEMO_TAG}", f"docker://{second}")
    _wait_for_event_grid_events(running, events_before + 2 * pushes_per_image)
    again = billed_records(client, digest, month)
    verdict = "not billed again" if len(again) == len(billed) == 1 else "UNEXPECTED"
    image = client.get(f"images/{digest}") or {}
    out(f"  the registry sent its push events; the image now has tags "
        f"{', '.join(image.get('tags', []))}, still assessed {image.get('assessedAt')}")
    out(f"  billing still has {len(again)} record(s) for this digest: {verdict}")

    out("\ntry the API:")
    for line in try_lines(client, running.registry_host, digest):
        out(line)
