"""Registry clients: a real Distribution registry (images pushed with skopeo), the ACR SDK
client pointed at it, and a small fake registry for auth challenges, retries and user agent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scanning import USER_AGENT
from scanning.errors import AuthError, NotFound, TransientRegistryError
from scanning.local.services import skopeo_copy
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout
from scanning.registry import (
    AcrSource,
    BasicCredentials,
    HttpRegistrySource,
    RegistryLimits,
    is_insecure_host,
    parse_reference,
    resolve_image,
)

pytestmark = pytest.mark.integration

AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64")


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    layout = tmp_path_factory.mktemp("layout")
    digest = build_oci_layout(layout, [(AMD64, [{"a.txt": b"a"}]), (ARM64, [{"b.txt": b"b"}])],
                              tag="v1", attestation=True)
    skopeo_copy(f"oci:{layout}:v1", f"docker://{registry.host}/team/app/api:v1")
    return digest


def test_http_source_resolves_a_pushed_index(registry, pushed: str) -> None:  # type: ignore[no-untyped-def]
    reference = parse_reference(f"{registry.host}/team/app/api:v1")
    source = HttpRegistrySource(reference.registry, reference.repository)
    resolved = resolve_image(source, reference)
    assert (resolved.digest, [str(p.platform) for p in resolved.platforms],
            [s.reason for s in resolved.skipped]) == (
        pushed, ["linux/amd64", "linux/arm64"], ["attestation manifest"])


def test_acr_sdk_source_reads_the_same_index(registry, pushed: str) -> None:  # type: ignore[no-untyped-def]
    reference = parse_reference(f"{registry.host}/team/app/api:v1")
    source = AcrSource(reference.registry, reference.repository, credential=None,
                       endpoint=f"http://{registry.host}")
    resolved = resolve_image(source, reference)
    blob = b"".join(source.blob_chunks(resolved.platforms[0].layers[0].digest))
    assert (resolved.digest, len(resolved.platforms), blob[:2]) == (pushed, 2, b"\x1f\x8b")


def test_unknown_tag_is_not_found(registry, pushed: str) -> None:  # type: ignore[no-untyped-def]
    source = HttpRegistrySource(registry.host, "team/app/api")
    with pytest.raises(NotFound):
        source.fetch_manifest("nope")


def test_loopback_is_http_and_public_hosts_are_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_INSECURE_HOSTS", "reg.lan:5000")
    assert [is_insecure_host(h) for h in ("127.0.0.1:5000", "localhost", "reg.lan:5000",
                                          "myacr.azurecr.io", "10.0.0.1")] == [
        True, True, True, False, False]


class FakeRegistry(BaseHTTPRequestHandler):
    """Bearer-token registry serving one manifest; fails the first N manifest GETs with 503."""

    manifest = json.dumps({"schemaVersion": 2, "mediaType":
                           "application/vnd.oci.image.index.v1+json", "manifests": []}).encode()
    seen: list[tuple[str, str, str]] = []
    failures_left = 0

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self.seen.append((self.path.split("?")[0], self.headers.get("User-Agent", ""),
                          self.headers.get("Authorization", "")))
        if self.path.startswith("/token"):
            assert "scope=repository%3Aorg%2Fimg%3Apull" in self.path
            self._send(200, json.dumps({"token": "T0K"}).encode(), "application/json")
        elif self.headers.get("Authorization") != "Bearer T0K":
            self.send_response(401)
            host = self.headers["Host"]
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="http://{host}/token",service="fake",'
                             'scope="repository:org/img:pull"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif FakeRegistry.failures_left > 0:
            FakeRegistry.failures_left -= 1
            self._send(503, b"", "text/plain")
        else:
            self._send(200, self.manifest, "application/vnd.oci.image.index.v1+json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeRegistry.seen = []
    FakeRegistry.failures_left = 0
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bearer_challenge_is_answered_with_a_token_and_our_user_agent(fake: str) -> None:
    source = HttpRegistrySource(fake, "org/img", limits=RegistryLimits(backoff=0))
    manifest = source.fetch_manifest("v1")
    assert (manifest.media_type, FakeRegistry.seen) == (
        "application/vnd.oci.image.index.v1+json", [
            ("/v2/org/img/manifests/v1", USER_AGENT, ""),
            ("/token", USER_AGENT, ""),
            ("/v2/org/img/manifests/v1", USER_AGENT, "Bearer T0K"),
        ])


def test_token_request_carries_basic_credentials_when_given(fake: str) -> None:
    source = HttpRegistrySource(fake, "org/img", credentials=BasicCredentials(
        username="u", password="p"), limits=RegistryLimits(backoff=0))
    source.fetch_manifest("v1")
    assert FakeRegistry.seen[1][2] == "Basic dTpw"


def test_transient_503_is_retried(fake: str) -> None:
    FakeRegistry.failures_left = 2
    source = HttpRegistrySource(fake, "org/img", limits=RegistryLimits(backoff=0))
    source.fetch_manifest("v1")
    assert len(FakeRegistry.seen) == 5  # 401, token, 503, 503, 200


def test_persistent_503_is_a_retryable_error(fake: str) -> None:
    FakeRegistry.failures_left = 10
    source = HttpRegistrySource(fake, "org/img", limits=RegistryLimits(backoff=0, attempts=3))
    with pytest.raises(TransientRegistryError) as raised:
        source.fetch_manifest("v1")
    assert raised.value.retryable


def test_refused_credentials_are_an_auth_error(tmp_path: Path) -> None:
    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="r"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = HttpRegistrySource(f"127.0.0.1:{server.server_address[1]}", "x",
                                    credentials=BasicCredentials(username="u", password="bad"))
        with pytest.raises(AuthError, match="refused access"):
            source.fetch_manifest("v1")
    finally:
        server.shutdown()
        server.server_close()
