from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from scanning.errors import BadRequest
from scanning.events import RegistryEvent, normalise, parse_time, to_event_grid

NGINX_DIGEST = "sha256:57a94fc99816c6aa225678b738ac40d85422e75dbb96115f1bb9b6ed77176166"


def load(samples: Path, name: str) -> dict:
    return json.loads((samples / name).read_text())


def test_event_grid_push(samples: Path) -> None:
    assert normalise(load(samples, "eventgrid/eventgrid-schema-ImagePushed.json")) == [
        RegistryEvent(
            action="push", registry="jolovcr.azurecr.io", repository="samples/nginx",
            digest=NGINX_DIGEST, tag="latest",
            media_type="application/vnd.docker.distribution.manifest.v2+json",
            user_agent=("docker/20.10.7 go/go1.13.15 git-commit/b0f5bc3 "
                        "kernel/5.10.16.3-microsoft-standard-WSL2 os/linux arch/amd64 "
                        "UpstreamClient(Docker-Client/20.10.7 \\(windows\\))"),
            time="2021-09-08T06:37:45.4681009Z",
            event_id="c25fdb80-ebbd-4dd0-a29c-a7349e6388f6",
        )
    ]


def test_cloudevents_delete_without_specversion_key(samples: Path) -> None:
    [event] = normalise(load(samples, "eventgrid/cloudevents-schema-ImageDeleted.json"))
    assert (event.action, event.registry, event.repository, event.digest, event.tag) == (
        "delete", "jolovcr.azurecr.io", "samples/nginx", NGINX_DIGEST, "")


def test_event_grid_and_cloudevents_push_agree(samples: Path) -> None:
    grid = normalise(load(samples, "eventgrid/eventgrid-schema-ImagePushed.json"))
    cloud = normalise(load(samples, "eventgrid/cloudevents-schema-ImagePushed.json"))
    assert [(e.action, e.repository, e.digest, e.tag) for e in cloud] == [
        (e.action, e.repository, e.digest, e.tag) for e in grid]


def test_distribution_index_push(samples: Path) -> None:
    [event] = normalise(load(samples, "distribution/push-oci-index.json"))
    assert (event.action, event.registry, event.repository, event.tag, event.media_type) == (
        "push", "127.0.0.1:5000", "multi", "1", "application/vnd.oci.image.index.v1+json")


def test_blob_push_is_not_a_manifest(samples: Path) -> None:
    [event] = normalise(load(samples, "distribution/push-blob.json"))
    assert event.is_manifest is False


def test_distribution_push_becomes_the_event_grid_event_acr_sends(samples: Path) -> None:
    payload = load(samples, "distribution/push-oci-manifest-tagged.json")
    grid = to_event_grid(payload["events"][0], topic="/local/registry")
    assert grid is not None
    assert (grid["eventType"], grid["subject"], grid["dataVersion"]) == (
        "Microsoft.ContainerRegistry.ImagePushed", "demo:1", "2.0")
    assert normalise(grid) == normalise(payload)


def test_distribution_blob_push_sends_no_event_grid_event(samples: Path) -> None:
    payload = load(samples, "distribution/push-blob.json")
    assert to_event_grid(payload["events"][0], topic="/local/registry") is None


def test_distribution_pull_sends_no_event_grid_event(samples: Path) -> None:
    payload = load(samples, "distribution/pull-oci-manifest-GET.json")
    assert to_event_grid(payload["events"][0], topic="/local/registry") is None


@pytest.mark.parametrize("payload, reason", [
    ("text", "event payload must be a JSON object or array"),
    ({"eventType": "Microsoft.Storage.BlobCreated", "data": {}},
     "unsupported event type 'Microsoft.Storage.BlobCreated'"),
    ({"eventType": "Microsoft.ContainerRegistry.ImagePushed", "data": {"target": {}}},
     "event target has no repository"),
    ({"hello": 1}, "not a registry event: no eventType, type, events or target"),
    ({"eventType": "Microsoft.ContainerRegistry.ImagePushed", "eventTime": "yesterday",
      "data": {"target": {"repository": "team/app"}}},
     "event time 'yesterday' is not an ISO 8601 time"),
    ({"events": [{"action": "push", "timestamp": "2025-03-01T12:00:00.12ab34Z",
                  "target": {"repository": "team/app"}}]},
     "event time '2025-03-01T12:00:00.12ab34Z' is not an ISO 8601 time"),
])
def test_malformed_payload_is_a_bad_request(payload: object, reason: str) -> None:
    with pytest.raises(BadRequest) as error:
        normalise(payload)
    assert str(error.value) == reason


def test_an_empty_time_is_an_error_not_now() -> None:
    with pytest.raises(ValueError, match="no time given"):
        parse_time("")


@pytest.mark.parametrize(("text", "expected"), [
    # Distribution: nanoseconds, UTC.
    ("2025-03-01T12:00:00.123456789Z", datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    # ACR / Event Grid: 7 digits.
    ("2025-03-01T12:00:00.1234567Z", datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2025-03-01T12:00:00.5+02:00",
     datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2)))),
    ("2025-03-01T12:00:00", datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),  # naive: UTC
])
def test_times_parse_to_the_microsecond(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", [
    "2025-03-01T12:00:00.12ab34Z",  # letters in the fraction
    "2025-03-01T12:00:00.Z",  # a dot without digits
    "2025-03-01T12:00:00.\u0661\u0662Z",  # Arabic-Indic digits
    "\uff12025-03-01T12:00:00Z",  # a fullwidth digit
])
def test_a_malformed_time_is_an_error_not_another_time(text: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_time(text)
