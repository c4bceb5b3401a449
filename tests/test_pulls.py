from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from scanning.events import normalise
from scanning.pulls import PullRecord, is_own_pull, pull_from_event


def load(samples: Path, name: str) -> dict:
    return json.loads((samples / "distribution" / name).read_text())


def test_manifest_pull_by_a_client_is_a_pull(samples: Path) -> None:
    [event] = normalise(load(samples, "pull-oci-manifest-GET.json"))
    assert pull_from_event(event) == PullRecord(
        registry="127.0.0.1:5000", repository="demo",
        digest="sha256:97e93001f691b8c3f2f49b5230dd85354261b85ccf4892aec3ed76468466edf7",
        time=datetime(2026, 11, 21, 17, 39, 15, 449407, tzinfo=UTC))


def test_blob_pull_is_not_counted(samples: Path) -> None:
    [event] = normalise(load(samples, "pull-blob.json"))
    assert pull_from_event(event) is None


def test_push_is_not_a_pull(samples: Path) -> None:
    [event] = normalise(load(samples, "push-oci-manifest-tagged.json"))
    assert pull_from_event(event) is None


def test_scanner_own_pull_is_not_counted(samples: Path) -> None:
    payload = load(samples, "pull-oci-manifest-GET.json")
    payload["events"][0]["request"]["useragent"] = "acr-scan/0.1.0"
    [event] = normalise(payload)
    assert pull_from_event(event) is None


def test_own_user_agent_prefix() -> None:
    assert (is_own_pull("acr-scan/0.1.0 azsdk-python"), is_own_pull("skopeo/1.9.3")) == (
        True, False)
