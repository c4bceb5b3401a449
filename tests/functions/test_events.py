"""on_registry_event starts one scan per image, however often the event is delivered."""

from __future__ import annotations

import hashlib

from scanning.events import RegistryEvent
from scanning.functions.events import scan_instance_id, starts_scan

DIGEST = "sha256:57a94fc99816c6aa225678b738ac40d85422e75dbb96115f1bb9b6ed77176166"


def _event(**changes: str) -> RegistryEvent:
    fields = {"action": "push", "registry": "jolovcr.azurecr.io", "repository": "samples/nginx",
              "digest": DIGEST, "tag": "latest",
              "media_type": "application/vnd.docker.distribution.manifest.v2+json",
              "user_agent": "docker/20.10.7", "time": "2021-09-08T06:37:45.4681009Z"}
    return RegistryEvent(**{**fields, **changes})


def test_instance_id_is_sha256_of_registry_repository_and_digest() -> None:
    assert scan_instance_id(_event()) == hashlib.sha256(
        f"jolovcr.azurecr.io/samples/nginx@{DIGEST}".encode()).hexdigest()


def test_the_same_digest_in_another_repository_is_another_scan() -> None:
    assert scan_instance_id(_event()) != scan_instance_id(_event(repository="prod/nginx"))


def test_manifest_push_starts_a_scan() -> None:
    assert starts_scan(_event()) is True


def test_delete_does_not_start_a_scan() -> None:
    assert starts_scan(_event(action="delete")) is False


def test_blob_push_does_not_start_a_scan() -> None:
    assert starts_scan(_event(media_type="application/octet-stream")) is False
