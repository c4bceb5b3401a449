"""A push made with skopeo reaches the Event Grid function as the event ACR would send."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning.local.host import LOCAL_TOPIC, FunctionHost
from scanning.local.services import Registry, free_port, skopeo_copy, start_registry
from scanning.model import Platform
from scanning.ocibuild import OCI_INDEX, build_oci_layout
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, request, wait_until

pytestmark = pytest.mark.integration

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
received: list[func.EventGridEvent] = []
pulls: list[Any] = []
lock = threading.Lock()


@app.event_grid_trigger(arg_name="event")
def capture(event: func.EventGridEvent) -> None:
    with lock:
        received.append(event)


AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64", variant="v8")
OS_RELEASE = {"etc/os-release": b'ID=debian\nVERSION_ID="12"\n'}


def _push_layout(directory: Path, tag: str, *platforms: Platform
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An OCI layout of ``platforms`` tagged ``tag``: its top descriptor and, for an index,
    the children's descriptors."""
    build_oci_layout(directory, [(platform, [OS_RELEASE]) for platform in platforms], tag)
    top: dict[str, Any] = json.loads((directory / "index.json").read_text())["manifests"][0]
    if top["mediaType"] != OCI_INDEX:
        return top, []
    index = json.loads((directory / "blobs" / "sha256" / top["digest"].split(":")[1]).read_bytes())
    return top, list(index["manifests"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionHost, Registry]]:
    host = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0,
                        pull_handler=lambda events: pulls.extend(events))
    host.start()
    registry = start_registry(tmp_path_factory.mktemp("registry"), port=free_port(),
                              notify_url=host.registry_events_url, notify_token=REGISTRY_TOKEN)
    yield host, registry
    registry.stop()
    host.stop()


def _events_for(repository: str, count: int) -> list[func.EventGridEvent]:
    def probe() -> list[func.EventGridEvent] | None:
        with lock:
            mine = [event for event in received if event.get_json()["target"]["repository"]
                    == repository]
        return mine if len(mine) >= count else None
    return wait_until(probe)


def _as_dict(event: func.EventGridEvent) -> dict[str, Any]:
    """The event with the values the registry generates per push replaced by markers."""
    data = json.loads(json.dumps(event.get_json()))
    assert data["id"] == event.id and data["timestamp"]
    assert data["request"]["useragent"].startswith("skopeo/")
    data["id"] = data["timestamp"] = data["request"]["id"] = data["request"]["useragent"] = "*"
    return {"topic": event.topic, "subject": event.subject, "eventType": event.event_type,
            "dataVersion": event.data_version, "hasTime": event.event_time is not None,
            "data": data}


def _expected(registry: Registry, repository: str, tag: str | None, media_type: str,
              digest: str, size: int) -> dict[str, Any]:
    target: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest,
                              "length": size, "repository": repository}
    if tag:
        target["tag"] = tag
    return {"topic": LOCAL_TOPIC, "subject": f"{repository}:{tag}" if tag else repository,
            "eventType": "Microsoft.ContainerRegistry.ImagePushed", "dataVersion": "2.0",
            "hasTime": True,
            "data": {"id": "*", "timestamp": "*", "action": "push", "target": target,
                     "request": {"id": "*", "host": registry.host, "method": "PUT",
                                 "useragent": "*"}}}


def test_tagged_manifest_push_arrives_as_image_pushed(
        stack: tuple[FunctionHost, Registry], tmp_path: Path) -> None:
    _, registry = stack
    manifest, _ = _push_layout(tmp_path / "layout", "v1", AMD64)
    skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry.host}/single:v1")
    events = _events_for("single", 1)
    assert [_as_dict(event) for event in events] == [
        _expected(registry, "single", "v1", manifest["mediaType"], manifest["digest"],
                  manifest["size"])]


def test_index_push_arrives_as_untagged_children_then_the_tagged_index(
        stack: tuple[FunctionHost, Registry], tmp_path: Path) -> None:
    _, registry = stack
    index, children = _push_layout(tmp_path / "layout", "multi", AMD64, ARM64)
    skopeo_copy(f"oci:{tmp_path / 'layout'}:multi", f"docker://{registry.host}/multi:v2")
    events = _events_for("multi", 3)
    child_events = sorted((_as_dict(event) for event in events[:2]),
                          key=lambda event: event["data"]["target"]["digest"])
    expected_children = sorted(
        (_expected(registry, "multi", None, child["mediaType"], child["digest"], child["size"])
         for child in children), key=lambda event: event["data"]["target"]["digest"])
    assert (child_events, _as_dict(events[2])) == (
        expected_children,
        _expected(registry, "multi", "v2", index["mediaType"], index["digest"], index["size"]))


def test_pull_notifications_go_to_the_pull_handler(
        stack: tuple[FunctionHost, Registry], tmp_path: Path) -> None:
    _, registry = stack
    manifest, _ = _push_layout(tmp_path / "layout", "v1", AMD64)
    skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry.host}/pulled:v1")
    request(f"http://{registry.host}/v2/pulled/manifests/v1", method="HEAD",
            headers={"Accept": manifest["mediaType"]})
    pulled = wait_until(lambda: [event for event in list(pulls)
                                 if event.repository == "pulled" and event.is_manifest])
    assert [(event.action, event.digest) for event in pulled] == [("pull", manifest["digest"])]


def test_notification_without_the_bearer_token_is_401(
        stack: tuple[FunctionHost, Registry]) -> None:
    host, _ = stack
    status, body = request(host.registry_events_url, method="POST",
                           headers={"Authorization": "Bearer wrong"}, body=b'{"events": []}')
    assert (status, json.loads(body)) == (401, {"error": {
        "code": "Unauthorized", "message": "the registry token is missing or wrong"}})

