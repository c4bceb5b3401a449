"""on_registry_event starts one scan per image, however often the event is delivered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from function_app import app
from scanning.events import RegistryEvent
from scanning.functions import eventlog
from scanning.functions.events import scan_instance_id, starts_scan
from scanning.local.host import FunctionHost, event_grid_event
from scanning.local.services import Azurite
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, request

DIGEST = "sha256:57a94fc99816c6aa225678b738ac40d85422e75dbb96115f1bb9b6ed77176166"


def _event(**changes: str) -> RegistryEvent:
    fields = {"action": "push", "registry": "jolovcr.azurecr.io", "repository": "samples/nginx",
              "digest": DIGEST, "tag": "latest",
              "media_type": "application/vnd.docker.distribution.manifest.v2+json",
              "user_agent": "docker/20.10.7", "time": "2021-09-08T06:37:45.4681009Z"}
    return RegistryEvent(**{**fields, **changes})


def test_instance_id_is_sha256_of_registry_and_digest() -> None:
    assert scan_instance_id(_event()) == hashlib.sha256(
        f"jolovcr.azurecr.io/{DIGEST}".encode()).hexdigest()


def test_manifest_push_starts_a_scan() -> None:
    assert starts_scan(_event()) is True


def test_delete_does_not_start_a_scan() -> None:
    assert starts_scan(_event(action="delete")) is False


def test_blob_push_does_not_start_a_scan() -> None:
    assert starts_scan(_event(media_type="application/octet-stream")) is False


@pytest.fixture
def host(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionHost]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    server = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0)
    server.start()
    yield server
    server.stop()
    # The session's Azurite is shared: leave it as found.
    TableServiceClient.from_connection_string(azurite.connection_string).delete_table(
        eventlog.TABLE_NAME)


@pytest.mark.integration
def test_repeated_event_grid_event_scans_once_and_is_listed(host: FunctionHost,
                                                            samples: Path) -> None:
    sample = json.loads((samples / "eventgrid" / "eventgrid-schema-ImagePushed.json").read_text())
    on_registry_event = host.index.get("on_registry_event")
    assert on_registry_event is not None
    host.invoke(on_registry_event, event_grid_event(sample))
    host.invoke(on_registry_event, event_grid_event(sample))
    instance = host.durable.wait(scan_instance_id(_event()), timeout=30)
    status, body = request(f"{host.base_url}/api/events/{DIGEST}",
                           headers={"x-functions-key": FUNCTION_KEY})
    assert (len(host.durable.instances()), instance.status.value, status, json.loads(body)) == (
        1, "Completed", 200,
        [{"registry": "jolovcr.azurecr.io", "repository": "samples/nginx", "digest": DIGEST,
          "tag": "latest", "media_type": "application/vnd.docker.distribution.manifest.v2+json",
          "action": "push", "user_agent": sample["data"]["request"]["useragent"],
          "time": "2021-09-08T06:37:45.4681009Z",
          "event_id": "c25fdb80-ebbd-4dd0-a29c-a7349e6388f6"}])
