"""What the integration tests share: test images, the running stack, one test's view of the app."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import azure.durable_functions as df

from scanning.advisories.index import compile_index, write_index
from scanning.advisories.osv import iter_records
from scanning.events import RegistryEvent, to_event_grid
from scanning.functions import api as api_functions
from scanning.functions.events import scan_instance_id
from scanning.functions.pulls import record_pulls
from scanning.local.durable import Instance
from scanning.local.host import LOCAL_TOPIC, FunctionHost, event_grid_event
from scanning.local.services import Registry, skopeo_copy
from scanning.model import Platform
from scanning.ocibuild import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    LayerFiles,
    build_oci_layout,
)
from scanning.service import context
from scanning.service.payloads import ScanRequest
from scanning.store import Store
from scanning.store.advisory_index import publish_index
from scanning.store.scans import ScanRecord

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ADVISORIES = FIXTURES / "advisories"
ALPINE = FIXTURES / "alpine"

FUNCTION_KEY = "integration-function-key"
REGISTRY_TOKEN = "integration-registry-token"
AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64", variant="v8")
SCAN_TIMEOUT = 60.0


def wait_until(probe: Callable[[], T | None], timeout: float = 20.0,
               what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


# ------------------------------------------------------------------------------ advisories


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexFiles:
    base: Path  # ITEST-0001, ITEST-0002
    updated: Path  # the base plus ITEST-0003


def compile_folders(folders: Sequence[Path], path: Path) -> Path:
    records = [record for folder in folders for record in iter_records(folder)]
    write_index(compile_index(records, sources=[str(folder) for folder in folders]), path)
    return path


# ------------------------------------------------------------------------------ images


def alpine_layers(marker: str) -> list[LayerFiles]:
    """An Alpine 3.18 base layer (the same in every test image) and a layer of ``marker``."""
    base: dict[str, bytes] = {
        "etc/os-release": (ALPINE / "os-release").read_bytes(),
        "lib/apk/db/installed": (ALPINE / "installed").read_bytes(),
    }
    return [base, {"srv/marker.txt": f"{marker}\n".encode()}]


def build_alpine_image(directory: Path, marker: str, tag: str = "v1",
                       platforms: Sequence[Platform] = (AMD64,)) -> str:
    """An OCI layout at ``directory``, one image per platform; the digest ``tag`` names."""
    return build_oci_layout(
        directory, [(platform, alpine_layers(f"{marker} {platform}")) for platform in platforms],
        tag)


def layout_layer_digests(directory: Path, manifest_digest: str) -> list[str]:
    """The layer digests of one image manifest in an OCI layout."""
    blob = directory / "blobs" / "sha256" / manifest_digest.removeprefix("sha256:")
    return [layer["digest"] for layer in json.loads(blob.read_bytes())["layers"]]


def _registry_call(url: str, *, method: str, data: bytes = b"",
                   headers: Mapping[str, str] | None = None) -> Mapping[str, str]:
    request = urllib.request.Request(url, method=method, data=data, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return dict(response.headers.items())


def push_blob(registry: str, repository: str, data: bytes) -> dict[str, Any]:
    """A monolithic blob upload (Distribution spec, "Pushing a blob monolithically"); its
    descriptor. The registry checks the digest, so the content is exactly ``data``."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    location = _registry_call(f"http://{registry}/v2/{repository}/blobs/uploads/",
                              method="POST")["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    separator = "&" if "?" in location else "?"
    _registry_call(f"{location}{separator}digest={digest}", method="PUT", data=data,
                   headers={"Content-Type": "application/octet-stream"})
    return {"digest": digest, "size": len(data)}


def push_raw_image(registry: str, repository: str, tag: str, *, layers: Sequence[bytes],
                   diff_ids: Sequence[str], config_media_type: str = OCI_CONFIG,
                   layer_media_type: str = OCI_LAYER_GZIP) -> str:
    """Push a manifest of exactly these layer blobs (hostile ones, or an artifact's); its
    digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_media_type, **push_blob(registry, repository, config)},
        "layers": [{"mediaType": layer_media_type, **push_blob(registry, repository, layer)}
                   for layer in layers],
    }).encode()
    _registry_call(f"http://{registry}/v2/{repository}/manifests/{tag}", method="PUT",
                   data=manifest, headers={"Content-Type": OCI_MANIFEST})
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}"


# ------------------------------------------------------------------------------ the stack


class PullRecorder:
    """The host's pull handler: remembers every pull notification, then feeds the ledger."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[RegistryEvent] = []

    def __call__(self, events: Sequence[RegistryEvent]) -> None:
        with self._lock:
            self._events.extend(events)
        record_pulls(events)

    def events(self, repository: str) -> list[RegistryEvent]:
        with self._lock:
            return [event for event in self._events if event.repository == repository]


# The repository of the blob ``Stack.settle_notifications`` pulls: nothing else uses it.
BARRIER_REPOSITORY = "acr-scan-test-barrier"


@dataclass(slots=True, kw_only=True)
class Stack:
    host: FunctionHost
    registry: Registry  # notifies the host
    quiet_registry: Registry  # notifies nobody: tests deliver its events themselves
    connection_string: str
    pulls: PullRecorder
    index_files: IndexFiles
    barrier_blob: str  # the digest of a blob in BARRIER_REPOSITORY of ``registry``

    def settle_notifications(self, timeout: float = SCAN_TIMEOUT) -> None:
        """Wait until the host has handled every notification the registry queued so far.

        The registry sends its notifications one at a time, in order, each once the host
        answered the one before. So once the host has received the pull of the barrier blob
        made now (told apart from earlier barriers by its user agent), every push, delete or
        pull the registry saw before it has been handled: none of a test's registry events
        can reach the host after the test ended, in the next test's storage namespace."""
        agent = f"acr-scan-test-barrier/{uuid.uuid4().hex}"
        _registry_call(f"http://{self.registry.host}/v2/{BARRIER_REPOSITORY}/blobs/"
                       f"{self.barrier_blob}", method="GET", headers={"User-Agent": agent})
        wait_until(lambda: any(event.user_agent == agent
                               for event in self.pulls.events(BARRIER_REPOSITORY)) or None,
                   timeout, "the registry's notifications delivered")


def reset_singletons() -> None:
    """The worker's services and the API's store are built from settings once per process.
    Under their locks: a build a previous test's late thread started with that test's
    settings must not land after the reset (its writes would go to the other namespace)."""
    context.forget_services()
    api_functions.forget_store()


@dataclass(slots=True, kw_only=True)
class App:
    """One test's view of the running app: its own storage namespace on the shared stack."""

    stack: Stack
    store: Store
    prefix: str

    @property
    def host(self) -> FunctionHost:
        return self.stack.host

    @property
    def registry(self) -> str:
        return self.stack.registry.host

    def publish_index(self, path: Path) -> None:
        publish_index(self.store.clients.blob_service(), path)
        # Workers look at the published index at most once a minute: look now.
        context.services().index.invalidate()

    def push(self, layout: Path, repository: str, tag: str = "v1", *,
             registry: str | None = None, layout_tag: str = "v1") -> None:
        """Push the image ``layout_tag`` names in the OCI layout, as ``repository:tag``."""
        skopeo_copy(f"oci:{layout}:{layout_tag}",
                    f"docker://{registry or self.registry}/{repository}:{tag}")

    def first_scan(self, registry: str, digest: str,
                   repository: str = "") -> Instance | None:
        """The first-scan orchestration of ``digest`` in ``registry`` (in ``repository``, or
        the one repository it was pushed to): one instance per registry + repository + digest
        (``scan_instance_id``), whose input is the push's request."""
        found = [instance for instance in self.host.durable.instances()
                 if instance.name == "scan_image" and isinstance(instance.input, dict)
                 and instance.input.get("registry") == registry
                 and instance.input.get("digest") == digest
                 and (not repository or instance.input.get("repository") == repository)
                 and instance.instance_id == scan_instance_id(
                     ScanRequest.from_json(instance.input))]
        return found[0] if len(found) == 1 else None

    def wait_for_scan(self, digest: str, *, registry: str | None = None,
                      repository: str = "", timeout: float = SCAN_TIMEOUT) -> Instance:
        """The completed first-scan orchestration of ``digest`` (started by an event)."""
        started = wait_until(
            lambda: self.first_scan(registry or self.registry, digest, repository), timeout,
            f"scan of {digest} started")
        finished = self.host.durable.wait(started.instance_id, timeout)
        assert finished.done.is_set(), f"scan of {digest} still {finished.status.value}"
        assert finished.status is df.OrchestrationRuntimeStatus.Completed, finished.output
        return finished

    def deliver_push(self, digest: str, repository: str, tag: str, *,
                     registry: str | None = None) -> None:
        """Call the Event Grid function directly with the event ACR sends for a push."""
        event = to_event_grid({
            "id": f"{repository}-{tag}-{digest}", "timestamp": datetime.now(UTC).isoformat(),
            "action": "push",
            "target": {"mediaType": OCI_MANIFEST, "digest": digest, "repository": repository,
                       "tag": tag},
            "request": {"host": registry or self.registry, "method": "PUT",
                        "useragent": "skopeo/1.13"},
        }, topic=LOCAL_TOPIC)
        assert event is not None
        function = self.host.index.get("on_registry_event")
        assert function is not None
        self.host.invoke(function, event_grid_event(event))

    def instances_of(self, digest: str) -> list[Instance]:
        """Every orchestration the host ran for ``digest``."""
        return [instance for instance in self.host.durable.instances()
                if isinstance(instance.input, dict) and instance.input.get("digest") == digest]

    def api(self, path: str, *, method: str = "GET", body: Any = None,
            headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.host.base_url}/api/{path}", method=method, data=data,
            headers={"x-functions-key": FUNCTION_KEY, "Content-Type": "application/json",
                     **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, raw = int(error.code), error.read()
        return status, json.loads(raw) if raw else None

    def scans_of(self, digest: str) -> list[ScanRecord]:
        """The scan history of ``digest``, oldest first."""
        scans = [scan for scan in self.store.scans.list(page_size=1000).items
                 if scan.digest == digest]
        return sorted(scans, key=lambda scan: scan.started)

    def wait_idle(self, timeout: float = SCAN_TIMEOUT) -> None:
        """Every orchestration the host knows has ended."""
        for instance in self.host.durable.instances():
            instance.done.wait(timeout)

    def settle(self, timeout: float = SCAN_TIMEOUT) -> None:
        """Nothing of this test is left to run: the registry's notifications are delivered
        (they may start orchestrations), then every orchestration has ended."""
        self.stack.settle_notifications(timeout)
        self.wait_idle(timeout)


def push_and_scan(app: App, tmp_path: Path, repository: str) -> str:
    """Build an Alpine image marked ``repository``, push it as ``repository:v1``, wait for its
    scan; its digest."""
    digest = build_alpine_image(tmp_path / repository, repository)
    app.push(tmp_path / repository, repository, "v1")
    app.wait_for_scan(digest)
    return digest


def findings_summary(image: Mapping[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(advisory, package, version, fixed version, severity, status) per sub-assessment."""
    rows = []
    for sub in image["subAssessments"]:
        properties = sub["properties"]
        software = properties["additionalData"]["softwareDetails"]
        rows.append((properties["id"], software["packageName"], software["version"],
                     software["fixedVersion"], properties["status"]["severity"],
                     properties["status"]["code"]))
    return rows
