"""Docker Hub references: API calls go to registry-1.docker.io and follow its token challenge.

No internet here: the client's transport seam (a ``requests`` adapter on its session) answers
with the shapes Docker Hub sends: a 401 whose ``WWW-Authenticate`` names auth.docker.io, the
token service's JSON, then the manifest list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from scanning import USER_AGENT
from scanning.registry import (
    HttpRegistrySource,
    ImageReference,
    ReferenceKind,
    api_host,
    open_source,
    parse_reference,
)

CHALLENGE = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
             'scope="repository:library/alpine:pull"')
UNAUTHORIZED = json.dumps({"errors": [{
    "code": "UNAUTHORIZED", "message": "authentication required",
    "detail": [{"Type": "repository", "Class": "", "Name": "library/alpine",
                "Action": "pull"}]}]}).encode()
TOKEN = json.dumps({"token": "eyJhbGciOiJSUzI1NiJ9.hub", "access_token": "eyJhbGciOiJSUzI1NiJ9.hub",
                    "expires_in": 300, "issued_at": "2026-12-03T01:00:00.000000000Z"}).encode()
MANIFEST_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_LIST = json.dumps({
    "manifests": [{
        "digest": "sha256:" + "a" * 64,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "platform": {"architecture": "amd64", "os": "linux"}, "size": 528}],
    "mediaType": MANIFEST_LIST_TYPE, "schemaVersion": 2}).encode()


class RecordedHub(BaseAdapter):
    """Answers as registry-1.docker.io and auth.docker.io do; records every request."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        self.seen.append((request.method or "", url, request.headers.get("Authorization", "")))
        assert request.headers["User-Agent"] == USER_AGENT
        if url.startswith("https://auth.docker.io/token?"):
            return _response(request, 200, TOKEN, {"Content-Type": "application/json"})
        if url == "https://registry-1.docker.io/v2/library/alpine/manifests/3.10":
            if request.headers.get("Authorization") != "Bearer eyJhbGciOiJSUzI1NiJ9.hub":
                return _response(request, 401, UNAUTHORIZED, {
                    "Content-Type": "application/json", "Www-Authenticate": CHALLENGE,
                    "Docker-Distribution-Api-Version": "registry/2.0"})
            digest = "sha256:" + hashlib.sha256(MANIFEST_LIST).hexdigest()
            return _response(request, 200, MANIFEST_LIST, {
                "Content-Type": MANIFEST_LIST_TYPE, "Docker-Content-Digest": digest})
        return _response(request, 404, b"", {})

    def close(self) -> None:
        return None


def _response(request: requests.PreparedRequest, status: int, body: bytes,
              headers: Mapping[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict({**headers, "Content-Length": str(len(body))})
    response._content = body
    response._content_consumed = True  # the body is all in memory: closing has nothing to free
    response.request = request
    response.url = request.url or ""
    return response


@pytest.mark.parametrize("text", ["alpine:3.10", "library/alpine:3.10", "docker.io/alpine:3.10",
                                  "docker.io/library/alpine:3.10",
                                  "index.docker.io/alpine:3.10",
                                  "index.docker.io/library/alpine:3.10"])
def test_docker_hub_references_read_docker_io_library(text: str) -> None:
    reference = parse_reference(text)
    assert reference == ImageReference(kind=ReferenceKind.REGISTRY, registry="docker.io",
                                       repository="library/alpine", tag="3.10")
    assert str(reference) == "docker.io/library/alpine:3.10"


def test_docker_hub_api_host_is_registry_1_and_others_are_themselves() -> None:
    assert [api_host(r) for r in ("docker.io", "ghcr.io", "127.0.0.1:5000")] == [
        "registry-1.docker.io", "ghcr.io", "127.0.0.1:5000"]


def test_docker_hub_manifest_follows_the_token_challenge_at_auth_docker_io() -> None:
    hub = RecordedHub()
    session = requests.Session()
    session.mount("https://", hub)
    reference = parse_reference("alpine:3.10")
    source = HttpRegistrySource(reference.registry, reference.repository, session=session,
                                sleep=lambda _seconds: None)
    manifest = source.fetch_manifest(reference.ref)
    assert manifest.media_type == MANIFEST_LIST_TYPE
    assert hub.seen == [
        ("GET", "https://registry-1.docker.io/v2/library/alpine/manifests/3.10", ""),
        ("GET", "https://auth.docker.io/token?scope=repository%3Alibrary%2Falpine%3Apull"
                "&service=registry.docker.io", ""),
        ("GET", "https://registry-1.docker.io/v2/library/alpine/manifests/3.10",
         "Bearer eyJhbGciOiJSUzI1NiJ9.hub"),
    ]


def test_docker_hub_reference_opens_an_http_source_on_registry_1() -> None:
    source = open_source(parse_reference("docker.io/alpine:3.10"))
    try:
        assert isinstance(source, HttpRegistrySource)
        assert (source.registry, source.base_url) == (
            "docker.io", "https://registry-1.docker.io/v2/library/alpine")
    finally:
        source.close()
