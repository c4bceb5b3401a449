"""The same image in two repositories of one registry (a dev → prod promotion): two images with
their own tags, deletes, pulls and rescans, sharing one analysis and one billing record."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanning import USER_AGENT
from scanning.ocibuild import OCI_MANIFEST
from scanning.store.images import ImageRecord
from tests.integration.helpers import (
    FUNCTION_KEY,
    App,
    build_alpine_image,
    layout_layer_digests,
    wait_until,
)

pytestmark = pytest.mark.integration

CLIENT_USER_AGENT = "containerd/1.7.2"
# A manifest GET the pull ledger ignores (the scanner's own product name) and the scanner's
# blob counts do not include (not its exact user agent): a marker in the notification stream.
BARRIER_USER_AGENT = USER_AGENT.split("/", 1)[0] + "/barrier"


@dataclass(frozen=True, slots=True, kw_only=True)
class Promoted:
    dev: str
    prod: str
    digest: str
    layout: Path


@pytest.fixture
def promoted(app: App, tmp_path: Path) -> Promoted:
    """One image pushed as ``dev/…:v1``, scanned, then as ``prod/…:v2``, scanned."""
    # Repositories and an image of this test's own: the registry and host outlive the test.
    dev, prod = f"dev/{app.prefix}", f"prod/{app.prefix}"
    layout = tmp_path / "layout"
    digest = build_alpine_image(layout, app.prefix)
    app.push(layout, dev, "v1")
    app.wait_for_scan(digest, repository=dev)
    app.push(layout, prod, "v2")
    app.wait_for_scan(digest, repository=prod)
    return Promoted(dev=dev, prod=prod, digest=digest, layout=layout)


def _registry_request(app: App, path: str, *, method: str = "GET",
                      user_agent: str = CLIENT_USER_AGENT) -> int:
    request = urllib.request.Request(f"http://{app.registry}/v2/{path}", method=method,
                                     headers={"Accept": OCI_MANIFEST, "User-Agent": user_agent})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return int(response.status)


def _notified_until_now(app: App, repository: str, tag: str) -> None:
    """Wait until every notification of ``repository`` sent so far has arrived: the registry
    notifies an endpoint in order, so all have once a barrier GET made now has."""
    _registry_request(app, f"{repository}/manifests/{tag}", user_agent=BARRIER_USER_AGENT)
    wait_until(lambda: any(event.user_agent == BARRIER_USER_AGENT
                           for event in app.stack.pulls.events(repository)),
               what=f"barrier of {repository} notified")


def _scanner_blob_pulls(app: App, repository: str, tag: str) -> set[str]:
    _notified_until_now(app, repository, tag)
    return {event.digest for event in app.stack.pulls.events(repository)
            if event.user_agent == USER_AGENT and not event.is_manifest}


def _config_digest(layout: Path, manifest_digest: str) -> str:
    blob = layout / "blobs" / "sha256" / manifest_digest.removeprefix("sha256:")
    return str(json.loads(blob.read_bytes())["config"]["digest"])


def _run_timer(app: App, name: str) -> None:
    request = urllib.request.Request(f"{app.host.base_url}/admin/functions/{name}",
                                     method="POST", data=b"{}",
                                     headers={"x-functions-key": FUNCTION_KEY})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202


def test_each_repository_lists_its_own_tags(app: App, promoted: Promoted) -> None:
    listed = [app.api(f"images?repository={repository}")[1]["value"]
              for repository in (promoted.dev, promoted.prod)]
    assert [[(image["repository"], image["digest"], image["tags"], image["status"])
             for image in images] for images in listed] == [
        [(promoted.dev, promoted.digest, ["v1"], "unhealthy")],
        [(promoted.prod, promoted.digest, ["v2"], "unhealthy")]]


def test_size_is_the_manifests_config_and_layers(app: App, promoted: Promoted) -> None:
    blob = promoted.layout / "blobs" / "sha256" / promoted.digest.removeprefix("sha256:")
    manifest = json.loads(blob.read_bytes())
    expected = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    status, body = app.api(f"images/{promoted.digest}?repository={promoted.prod}")
    assert (status, body["sizeBytes"]) == (200, expected)


def test_get_image_without_a_repository_lists_both(app: App, promoted: Promoted) -> None:
    status, body = app.api(f"images/{promoted.digest}")
    assert (status, body["error"]["code"], body["error"]["candidates"]) == (
        409, "Ambiguous", [{"registry": app.registry, "repository": promoted.dev},
                           {"registry": app.registry, "repository": promoted.prod}])


def test_the_second_repository_reuses_the_analysis(app: App, promoted: Promoted) -> None:
    # The second scan reads the manifest and its config, never a layer: the layer cache has
    # them all from the first.
    config = _config_digest(promoted.layout, promoted.digest)
    layers = layout_layer_digests(promoted.layout, promoted.digest)
    assert (_scanner_blob_pulls(app, promoted.dev, "v1"),
            _scanner_blob_pulls(app, promoted.prod, "v2")) == ({config, *layers}, {config})


def test_the_digest_is_billed_once_with_both_repositories(app: App,
                                                          promoted: Promoted) -> None:
    outcomes = [app.wait_for_scan(promoted.digest, repository=repository).output["billed"]
                for repository in (promoted.dev, promoted.prod)]
    status, body = app.api("billing")
    assert (status, outcomes, body["count"],
            [(item["digest"], item["repository"], item["repositories"])
             for item in body["value"]]) == (
        200, [True, False], 1, [(promoted.digest, promoted.dev, [promoted.dev, promoted.prod])])


def test_a_delete_in_one_repository_leaves_the_other(app: App, promoted: Promoted) -> None:
    assert _registry_request(app, f"{promoted.prod}/manifests/{promoted.digest}",
                             method="DELETE") == 202

    def deleted() -> ImageRecord | None:
        image = app.store.images.get(app.registry, promoted.prod, promoted.digest)
        return image if image.deleted else None

    wait_until(deleted, what="prod image marked deleted")
    dev = app.store.images.get(app.registry, promoted.dev, promoted.digest)
    status, body = app.api("images")
    assert (dev.deleted, status, [(image["repository"], image["deleted"])
                                  for image in body["value"]]) == (
        False, 200, [(promoted.dev, False)])


def test_a_pull_is_recorded_in_its_repository_only(app: App, promoted: Promoted) -> None:
    _registry_request(app, f"{promoted.dev}/manifests/v1")
    entry = wait_until(lambda: app.store.pulls.get(app.registry, promoted.dev, promoted.digest),
                       what="dev pull recorded")
    _notified_until_now(app, promoted.prod, "v2")
    assert ((entry.repository, entry.count),
            app.store.pulls.get(app.registry, promoted.prod, promoted.digest)) == (
        (promoted.dev, 1), None)


def test_the_weekly_rescan_reassesses_only_the_pulled_repository(app: App,
                                                                 promoted: Promoted) -> None:
    _registry_request(app, f"{promoted.dev}/manifests/v1")
    wait_until(lambda: app.store.pulls.get(app.registry, promoted.dev, promoted.digest),
               what="dev pull recorded")
    _run_timer(app, "weekly_rescan")
    app.wait_idle()
    scans = app.scans_of(promoted.digest)
    assert {repository: [scan.trigger.value for scan in scans if scan.repository == repository]
            for repository in (promoted.dev, promoted.prod)} == {
        promoted.dev: ["push", "rescan"], promoted.prod: ["push"]}
