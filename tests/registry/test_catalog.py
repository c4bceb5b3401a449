"""Listing a registry's images: a real Distribution registry (images pushed with skopeo), the
real ACR SDK against a small ``/acr/v1`` server, and a small server for odd answers."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.containerregistry import ContainerRegistryClient

from scanning import USER_AGENT
from scanning.errors import RegistryError
from scanning.local.services import Registry, skopeo_copy
from scanning.model import Platform
from scanning.ocibuild import OCI_INDEX, OCI_MANIFEST, build_oci_layout
from scanning.registry.catalog import ACR_AUDIENCE, CatalogImage, list_registry_images

AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64")
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64


# ---------------------------------------------------------------------------------------------
# A real Distribution registry (shared by the session: assert on our own repositories only)


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[str, set[CatalogImage]]:
    """Our repositories' prefix and the images pushed under it."""
    prefix = f"catalog-{uuid.uuid4().hex[:8]}"
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    multi = tmp_path_factory.mktemp("multi")
    first_digest = build_oci_layout(first, [(AMD64, [{"etc/one": b"1"}])], tag="v1")
    second_digest = build_oci_layout(second, [(AMD64, [{"etc/two": b"2"}])], tag="v2")
    index_digest = build_oci_layout(multi, [(AMD64, [{"a": b"a"}]), (ARM64, [{"b": b"b"}])],
                                    tag="1.0")
    app, tools = f"{prefix}/app", f"{prefix}/tools"
    skopeo_copy(f"oci:{first}:v1", f"docker://{registry.host}/{app}:v1")
    skopeo_copy(f"oci:{first}:v1", f"docker://{registry.host}/{app}:latest")
    skopeo_copy(f"oci:{second}:v2", f"docker://{registry.host}/{app}:v2")
    skopeo_copy(f"oci:{multi}:1.0", f"docker://{registry.host}/{tools}:1.0")
    expected = {
        CatalogImage(registry=registry.host, repository=app, digest=first_digest,
                     tags=("latest", "v1"), media_type=OCI_MANIFEST),
        CatalogImage(registry=registry.host, repository=app, digest=second_digest,
                     tags=("v2",), media_type=OCI_MANIFEST),
        CatalogImage(registry=registry.host, repository=tools, digest=index_digest,
                     tags=("1.0",), media_type=OCI_INDEX),
    }
    return prefix, expected


def _ours(images: Iterator[CatalogImage], prefix: str) -> set[CatalogImage]:
    return {image for image in images if image.repository.startswith(f"{prefix}/")}


@pytest.mark.integration
def test_distribution_listing_groups_tags_by_digest_and_lists_an_index_once(
        registry: Registry, pushed: tuple[str, set[CatalogImage]]) -> None:
    prefix, expected = pushed
    assert _ours(list_registry_images(registry.host), prefix) == expected


@pytest.mark.integration
def test_distribution_listing_follows_link_pages(
        registry: Registry, pushed: tuple[str, set[CatalogImage]]) -> None:
    prefix, expected = pushed
    assert _ours(list_registry_images(registry.host, page_size=1), prefix) == expected


@pytest.mark.integration
def test_limit_caps_the_images_yielded(
        registry: Registry, pushed: tuple[str, set[CatalogImage]]) -> None:
    assert len(list(list_registry_images(registry.host, page_size=1, limit=2))) == 2


# ---------------------------------------------------------------------------------------------
# A small server: answers per path (with or without the query string), anything else is 404;
# with ``bearer`` set it asks for a Docker token per scope first


Route = tuple[int, dict[str, str], bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self, with_body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.server.agents.add(self.headers.get("User-Agent", ""))
        if self.server.bearer and not self.path.startswith("/token"):
            # Docker token auth: each path wants a token for its own scope.
            scope = ("registry:catalog:*" if self.path.startswith("/v2/_catalog")
                     else "repository:app:pull")
            if self.headers.get("Authorization") != f"Bearer {scope}":
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{self.server.host}'
                                 f'/token",service="test",scope="{scope}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if self.path.startswith("/token?"):
            scope = parse_qs(urlsplit(self.path).query)["scope"][0]
            self.server.routes[self.path] = _json({"token": scope})
        routes = self.server.routes
        status, headers, body = routes.get(self.path) or routes.get(
            self.path.split("?", 1)[0], (404, {}, b""))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body and self.path in self.server.cut_once:
            # Half the body, then the connection closes: the client reads too few bytes.
            self.server.cut_once.discard(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
        elif with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    routes: dict[str, Route]
    requests: list[str]
    agents: set[str]
    bearer: bool
    cut_once: set[str]  # paths whose next body is cut off part way

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.requests, httpd.agents, httpd.bearer = {}, [], set(), False
    httpd.cut_once = set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _json(document: object, **headers: str) -> Route:
    return 200, {"Content-Type": "application/json", **headers}, json.dumps(document).encode()


def test_catalog_that_is_not_json_is_a_registry_error(server: _Server) -> None:
    server.routes["/v2/_catalog"] = (200, {"Content-Type": "application/json"}, b"<html>oops")
    with pytest.raises(RegistryError, match="catalog page is not JSON"):
        list(list_registry_images(server.host))


def test_tags_of_the_wrong_shape_are_a_registry_error(server: _Server) -> None:
    server.routes["/v2/_catalog"] = _json({"repositories": ["app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": "v1"})
    with pytest.raises(RegistryError, match="tags of app page has no list of strings"):
        list(list_registry_images(server.host))


def test_a_registry_without_a_catalog_is_a_registry_error(server: _Server) -> None:
    with pytest.raises(RegistryError, match="GET catalog answered 404"):
        list(list_registry_images(server.host))


def test_every_request_carries_the_scanner_user_agent(server: _Server) -> None:
    server.routes["/v2/_catalog"] = _json({"repositories": ["app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": ["v1"]})
    server.routes["/v2/app/manifests/v1"] = (
        200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST_A}, b"{}")
    assert (list(list_registry_images(server.host)), server.agents) == (
        [CatalogImage(registry=server.host, repository="app", digest=DIGEST_A, tags=("v1",),
                      media_type=OCI_MANIFEST)],
        {USER_AGENT})


def test_bearer_challenges_get_a_token_for_the_scope_asked(server: _Server) -> None:
    server.bearer = True
    server.routes["/v2/_catalog"] = _json({"repositories": ["app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": ["v1"]})
    server.routes["/v2/app/manifests/v1"] = (
        200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST_A}, b"{}")
    assert [image.digest for image in list_registry_images(server.host)] == [DIGEST_A]
    assert server.requests == [
        "GET /v2/_catalog?n=100",
        "GET /token?scope=registry%3Acatalog%3A%2A&service=test",
        "GET /v2/_catalog?n=100",
        "GET /v2/app/tags/list?n=100",
        "GET /token?scope=repository%3Aapp%3Apull&service=test",
        "GET /v2/app/tags/list?n=100",
        "HEAD /v2/app/manifests/v1",
    ]


def test_a_catalog_page_cut_off_part_way_is_fetched_again(server: _Server) -> None:
    server.routes["/v2/_catalog"] = _json({"repositories": ["app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": ["v1"]})
    server.routes["/v2/app/manifests/v1"] = (
        200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST_A}, b"{}")
    server.cut_once.add("/v2/_catalog?n=100")
    assert ([image.digest for image in list_registry_images(server.host)], server.requests) == (
        [DIGEST_A], ["GET /v2/_catalog?n=100", "GET /v2/_catalog?n=100",
                     "GET /v2/app/tags/list?n=100", "HEAD /v2/app/manifests/v1"])


def test_a_repeated_link_stops_the_paging(server: _Server) -> None:
    server.routes["/v2/_catalog?n=1"] = _json(
        {"repositories": ["app"]}, Link='</v2/_catalog?last=app&n=1>; rel="next"')
    server.routes["/v2/_catalog?last=app&n=1"] = _json(
        {"repositories": ["app"]}, Link='</v2/_catalog?last=app&n=1>; rel="next"')
    server.routes["/v2/app/tags/list?n=1"] = _json({"name": "app", "tags": None})
    assert list(list_registry_images(server.host, page_size=1)) == []
    assert server.requests == ["GET /v2/_catalog?n=1", "GET /v2/app/tags/list?n=1",
                               "GET /v2/_catalog?last=app&n=1", "GET /v2/app/tags/list?n=1"]


def test_a_link_to_another_host_is_a_registry_error(server: _Server) -> None:
    server.routes["/v2/_catalog"] = _json(
        {"repositories": ["app"]}, Link='<https://elsewhere.example/v2/_catalog?last=app>; '
                                        'rel="next"')
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": []})
    with pytest.raises(RegistryError, match="next page link leaves the registry"):
        list(list_registry_images(server.host))


def test_a_manifest_head_without_digest_is_hashed_from_its_get(server: _Server) -> None:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    server.routes["/v2/_catalog"] = _json({"repositories": ["app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": ["v1"]})
    server.routes["/v2/app/manifests/v1"] = (200, {"Content-Type": OCI_MANIFEST}, manifest)
    assert list(list_registry_images(server.host)) == [CatalogImage(
        registry=server.host, repository="app",
        digest=f"sha256:{hashlib.sha256(manifest).hexdigest()}",
        tags=("v1",), media_type=OCI_MANIFEST)]


def test_malformed_names_are_skipped_not_requested(server: _Server) -> None:
    server.routes["/v2/_catalog"] = _json({"repositories": ["../escape", "app"]})
    server.routes["/v2/app/tags/list"] = _json({"name": "app", "tags": ["bad/tag"]})
    assert list(list_registry_images(server.host)) == []
    assert server.requests == ["GET /v2/_catalog?n=100", "GET /v2/app/tags/list?n=100"]


# ---------------------------------------------------------------------------------------------
# ACR: the real SDK against the ``/acr/v1`` answers of ACR's REST API (Manifests - Get List)


def _acr_manifest(digest: str, media_type: str, tags: list[str] | None) -> dict[str, object]:
    entry: dict[str, object] = {
        "digest": digest, "imageSize": 1024, "createdTime": "2024-05-01T10:00:00Z",
        "lastUpdateTime": "2024-05-01T10:00:00Z", "mediaType": media_type,
        "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True,
                                 "readEnabled": True, "listEnabled": True},
    }
    if tags is not None:
        entry["tags"] = tags
    return entry


def _acr_client(server: _Server) -> ContainerRegistryClient:
    return ContainerRegistryClient(f"http://{server.host}", None, audience=ACR_AUDIENCE)


def test_acr_listing_maps_tagged_manifests_and_skips_untagged_children(
        server: _Server) -> None:
    server.routes["/acr/v1/_catalog"] = _json({"repositories": ["team/api"]})
    # The SDK quotes the whole repository name into one path segment.
    server.routes["/acr/v1/team%2Fapi/_manifests"] = _json({
        "registry": server.host, "imageName": "team/api",
        "manifests": [
            _acr_manifest(DIGEST_A, OCI_INDEX, ["v1", "latest"]),
            _acr_manifest(DIGEST_B, OCI_MANIFEST, None),
            _acr_manifest(DIGEST_C, "application/vnd.docker.distribution.manifest.v2+json",
                          ["old"]),
        ],
    })
    with _acr_client(server) as client:
        images = list(list_registry_images(server.host, client=client))
    assert images == [
        CatalogImage(registry=server.host, repository="team/api", digest=DIGEST_A,
                     tags=("latest", "v1"), media_type=OCI_INDEX),
        CatalogImage(registry=server.host, repository="team/api", digest=DIGEST_C,
                     tags=("old",),
                     media_type="application/vnd.docker.distribution.manifest.v2+json"),
    ]


def test_acr_catalog_that_is_not_json_is_a_registry_error(server: _Server) -> None:
    server.routes["/acr/v1/_catalog"] = (200, {"Content-Type": "application/json"}, b"{oops")
    with _acr_client(server) as client, pytest.raises(RegistryError, match="malformed"):
        list(list_registry_images(server.host, client=client))
