"""Scans through a registry that misbehaves: a proxy in front of the real Distribution
registry answers about 30% of requests with 429, 503, a reset connection, a body cut off
part way or a slow body, and every scan still ends with the result it has without faults;
a registry that drips its answer a byte at a time fails the scan at its deadline, at once,
with a reason that says so.

The images sit in the registry without notifications; the tests deliver the push event
naming the proxy, as ACR names its login server.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from scanning.cli import main
from scanning.local.durable import Instance
from scanning.ocibuild import OCI_INDEX, OCI_MANIFEST, layer_tar
from tests.integration.fault_proxy import (
    TRANSIENT_FAULTS,
    Fault,
    FaultProxy,
    fault_proxy,
    seeded_faults,
)
from tests.integration.helpers import App, alpine_layers, push_raw_image

pytestmark = pytest.mark.integration

SCANS = 20
CLI_READS = 10  # one after the other, each waiting out its own backoffs
SEED = 14  # issue #14


def _push(app: App, repository: str, marker: str) -> tuple[str, str]:
    """An Alpine image with its own marker layer in the quiet registry: (digest, marker
    layer digest)."""
    plain = [layer_tar(files) for files in alpine_layers(marker)]
    layers = [gzip.compress(data, mtime=0) for data in plain]
    digest = push_raw_image(app.stack.quiet_registry.host, repository, "v1", layers=layers,
                            diff_ids=[f"sha256:{hashlib.sha256(data).hexdigest()}"
                                      for data in plain])
    return digest, f"sha256:{hashlib.sha256(layers[1]).hexdigest()}"


def _timed_scan(app: App, proxy: FaultProxy, digest: str,
                repository: str) -> tuple[Instance, float]:
    """The push event for ``digest`` through ``proxy``, its finished scan and the seconds it
    took."""
    started = time.monotonic()
    app.deliver_push(digest, repository, "v1", registry=proxy.host)
    scan = app.wait_for_scan(digest, registry=proxy.host)
    return scan, time.monotonic() - started


def test_scans_through_a_faulty_registry_end_as_without_faults(
        app: App, caplog: pytest.LogCaptureFixture) -> None:
    images = [_push(app, f"faulty/app{number}", f"{app.prefix} {number}")[0]
              for number in range(SCANS)]
    app.deliver_push(images[0], "faulty/app0", "v1", registry=app.stack.quiet_registry.host)
    baseline = app.wait_for_scan(images[0], registry=app.stack.quiet_registry.host).output
    caplog.set_level(logging.INFO, logger="scanning.local.durable")
    with fault_proxy(app.stack.quiet_registry.host, seeded_faults(SEED, 0.3)) as proxy:
        for number, digest in enumerate(images):
            app.deliver_push(digest, f"faulty/app{number}", "v1", registry=proxy.host)
        outcomes = [app.wait_for_scan(digest, registry=proxy.host).output for digest in images]
        injected = sorted({fault.value for fault in proxy.injected if fault is not Fault.NONE})
    # The registry client absorbed every fault: no activity had to be run a second time.
    activity_retries = [record.getMessage() for record in caplog.records
                        if "retrying" in record.getMessage()]
    assert ((baseline["status"], baseline["findings"]),
            [(outcome["status"], outcome["findings"]) for outcome in outcomes],
            injected, activity_retries) == (
        ("unhealthy", 3), [("unhealthy", 3)] * SCANS,
        sorted(fault.value for fault in TRANSIENT_FAULTS), [])


def test_a_registry_dripping_its_manifest_fails_the_scan_at_the_deadline(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_MANIFEST_DEADLINE_SECONDS", "2")
    digest, _ = _push(app, "drip/manifest", app.prefix)
    with fault_proxy(app.stack.quiet_registry.host,
                     lambda method, path, count: Fault.DRIP if "/manifests/" in path
                     else Fault.NONE) as proxy:
        scan, elapsed = _timed_scan(app, proxy, digest, "drip/manifest")
        requests = dict(proxy.injected)
    # The deadline is not retried: one dripping request, and the scan ends within seconds.
    assert (scan.output["status"], scan.output["reason"].split(" (")[0], requests,
            elapsed < 15) == (
        "failed", f"{proxy.host}: manifest {digest} not received within its 2 s deadline",
        {Fault.DRIP: 1}, True)


def test_a_registry_dripping_a_layer_fails_the_scan_naming_the_layer(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_BLOB_DEADLINE_SECONDS", "2")
    digest, layer = _push(app, "drip/layer", app.prefix)
    with fault_proxy(app.stack.quiet_registry.host,
                     lambda method, path, count: Fault.DRIP if path.endswith(layer)
                     else Fault.NONE) as proxy:
        scan, elapsed = _timed_scan(app, proxy, digest, "drip/layer")
        drips = proxy.injected[Fault.DRIP]
    _, image = app.api(f"images/{digest}")
    assert (scan.output["status"], image["reason"].split(" (")[0], drips, elapsed < 15) == (
        "failed", f"linux/amd64: layer 2/2 {layer}: layer {layer} cannot be read: "
        f"{proxy.host}: blob {layer} not received within its 2 s deadline", 1, True)


def test_the_cli_reads_images_through_a_faulty_registry(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    images = [_push(app, f"faulty/cli{number}", f"{app.prefix} cli {number}")[0]
              for number in range(CLI_READS)]
    outcomes = []
    with fault_proxy(app.stack.quiet_registry.host, seeded_faults(SEED, 0.3)) as proxy:
        for number in range(CLI_READS):
            capsys.readouterr()
            code = main(["sbom", f"{proxy.host}/faulty/cli{number}:v1", "--format", "json"])
            document = json.loads(capsys.readouterr().out)
            outcomes.append((code, document["digest"], document["status"],
                             len(document["platforms"][0]["packages"])))
    assert outcomes == [(0, digest, "complete", 4) for digest in images]


def _hostile(document: dict[str, Any]) -> tuple[str, bytes]:
    content = json.dumps(document).encode()
    return f"sha256:{hashlib.sha256(content).hexdigest()}", content


def _manifest(registry: str, repository: str, digest: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{digest}",
                                     headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(request, timeout=30) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def _index_with_annotations_as_a_list(child: str, manifest: dict[str, Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": 1, "annotations": ["x"]}]}


def _manifest_with_a_layer_size_as_a_string(child: str,
                                            manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["layers"][1]["size"] = "10"
    return manifest


# case -> (make the hostile document from the pushed image, its media type, the reason)
HOSTILE_MANIFESTS: dict[str, tuple[Callable[[str, dict[str, Any]], dict[str, Any]], str, str]] = {
    "annotations-list": (_index_with_annotations_as_a_list, OCI_INDEX,
                         "index {digest}: manifests[0].annotations must be an object, not an "
                         "array"),
    "size-string": (_manifest_with_a_layer_size_as_a_string, OCI_MANIFEST,
                    "manifest {digest}: layers[1].size must be an integer, not a string"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_a_malformed_manifest_fails_the_scan_once_naming_the_field(
        app: App, caplog: pytest.LogCaptureFixture, case: str) -> None:
    quiet = app.stack.quiet_registry.host
    child, _ = _push(app, f"hostile/{case}", app.prefix)
    make, media_type, reason = HOSTILE_MANIFESTS[case]
    digest, content = _hostile(make(child, _manifest(quiet, f"hostile/{case}", child)))
    caplog.set_level(logging.INFO, logger="scanning.local.durable")
    with fault_proxy(quiet, documents={digest: (media_type, content)}) as proxy:
        app.deliver_push(digest, f"hostile/{case}", "v2", registry=proxy.host)
        scan = app.wait_for_scan(digest, registry=proxy.host)
        manifest_gets = len(proxy.statuses("GET", "/manifests/"))
    # Permanent: one GET of the manifest, no activity run twice, one line naming the field.
    retries = [record.getMessage() for record in caplog.records
               if "retrying" in record.getMessage()]
    assert (scan.output["status"], scan.output["reason"], manifest_gets, retries) == (
        "failed", reason.format(digest=digest), 1, [])


def test_the_cli_stops_at_the_deadline_of_a_dripping_registry(
        app: App, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REGISTRY_MANIFEST_DEADLINE_SECONDS", "2")
    _push(app, "drip/cli", app.prefix)
    with fault_proxy(app.stack.quiet_registry.host,
                     lambda method, path, count: Fault.DRIP if "/manifests/" in path
                     else Fault.NONE) as proxy:
        capsys.readouterr()
        started = time.monotonic()
        code = main(["sbom", f"{proxy.host}/drip/cli:v1"])
        elapsed = time.monotonic() - started
    error = capsys.readouterr().err
    assert (code, error.split(" (")[0], error.count("\n"), elapsed < 10) == (
        2, f"error: {proxy.host}: manifest v1 not received within its 2 s deadline", 1, True)
