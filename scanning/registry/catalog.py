"""Every image in a registry, for the catch-up job that scans what no event told us about.

Two listings, one result (``CatalogImage``: repository, digest, tags, media type):

* ACR, through ``azure-containerregistry``'s ``ContainerRegistryClient`` (``/acr/v1/_catalog``
  and ``/acr/v1/<repo>/_manifests``, paged by the SDK). One request per page of manifests
  gives every digest with its tags, instead of one request per tag. The SDK (1.2.0) drops the
  ``mediaType`` that the REST API returns for each manifest (``ManifestAttributesBase`` has no
  such field), so we read it from the raw page with azure-core's ``raw_response_hook``.
* Any other registry, through the Distribution API (distribution ``docs/spec/api.md``, OCI
  distribution-spec "Content discovery"): ``GET /v2/_catalog?n=`` and ``GET /v2/<repo>/tags/list
  ?n=``, both paged by ``Link: <...>; rel="next"`` (RFC 8288), then ``HEAD
  /v2/<repo>/manifests/<tag>`` for each tag's ``Docker-Content-Digest`` and ``Content-Type``;
  tags are grouped by digest per repository. The HTTP client is ``HttpRegistrySource``'s
  (auth challenges with the scope the registry asks for, ``registry:catalog:*`` here, retries
  on 429/5xx, ``User-Agent: acr-scan/...``, http only for loopback and insecure hosts).

Only tagged manifests are listed. The untagged manifests of a repository are mostly the
children of an index (one per platform, pushed untagged before the index): listing them would
scan each platform a second time, apart from its index. The rest are images whose tag moved;
they were scanned when pushed and keep their results.

Everything is bounded: ``limit`` caps the images yielded, a page loop stops when a ``Link``
repeats or a page is empty, a page body is capped at 4 MiB, and malformed JSON raises
``RegistryError``. Names that break the distribution reference grammar are skipped and logged,
never put into a URL.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from scanning import USER_AGENT
from scanning.errors import AuthError, RegistryError, ScanError
from scanning.registry.acr import azure_error
from scanning.registry.base import (
    _DIGEST_RE,
    _REPOSITORY_RE,
    _TAG_RE,
    ACCEPT,
    MAX_MANIFEST_BYTES,
    sha256_digest,
)
from scanning.registry.http import BasicCredentials, HttpRegistrySource, _Deadline
from scanning.registry.reference import is_acr, is_insecure_host

log = logging.getLogger(__name__)

# ACR-audience Entra tokens: a registry accepts them always, while ARM-audience tokens
# ("https://management.azure.com") stop working once authentication-as-arm is disabled, as the
# built-in Azure Policy "Container registries should have ARM audience token authentication
# disabled" asks (learn.microsoft.com, container-registry-disable-authentication-as-arm). It is
# also the SDK's default, which ``AcrSource`` uses.
ACR_AUDIENCE = "https://containerregistry.azure.net"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_BYTES = 4 << 20
# RFC 8288 link value: <target>; param; rel="next" (quotes optional).
_NEXT_LINK_RE = re.compile(r'<([^>]*)>[^,]*?;\s*rel="?next"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogImage:
    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str


def list_registry_images(registry: str, *, credential: Any = None,
                basic: BasicCredentials | None = None, client: Any = None,
                page_size: int = DEFAULT_PAGE_SIZE, limit: int = 100_000
                ) -> Iterator[CatalogImage]:
    """Every tagged image in ``registry``, at most ``limit`` of them, one page at a time.

    ACR (or any ``client`` given: a ``ContainerRegistryClient``, which tests point at a local
    server) is listed through the SDK with ``credential``, ``DefaultAzureCredential`` by default
    (managed identity; ``AZURE_CLIENT_ID`` picks a user-assigned one). With ``basic`` credentials
    ACR is listed like any other registry, through the Distribution API, as ``open_source``
    does. ``page_size`` is the ``n`` asked of each paged call.
    """
    if limit <= 0:
        return
    if client is not None:
        yield from _list_acr(registry, client, page_size=page_size, limit=limit)
    elif is_acr(registry) and basic is None:
        from azure.containerregistry import ContainerRegistryClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        with ContainerRegistryClient(f"https://{registry}", credential, audience=ACR_AUDIENCE,
                                     user_agent=USER_AGENT) as own_client:
            yield from _list_acr(registry, own_client, page_size=page_size, limit=limit)
    else:
        api = _RegistryApi(registry, credentials=basic)
        try:
            yield from _list_distribution(api, page_size=page_size, limit=limit)
        finally:
            api.close()


# ---------------------------------------------------------------------------------------------
# ACR through the SDK


def _list_acr(registry: str, client: Any, *, page_size: int,
              limit: int) -> Iterator[CatalogImage]:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    # The SDK refuses http unless told per call (azure.containerregistry._helpers).
    call_options: dict[str, Any] = (
        {"enforce_https": False} if is_insecure_host(registry) else {}
    )
    media_types: dict[str, str] = {}
    yielded = 0
    seen_repositories: set[str] = set()
    try:
        for repository in client.list_repository_names(results_per_page=page_size,
                                                        **call_options):
            # ACR pages lexically with ``last=``; a name seen twice means the pages loop.
            if repository in seen_repositories:
                log.warning("registry %s: repository %s listed twice, stopping", registry,
                            repository)
                return
            seen_repositories.add(repository)
            media_types.clear()
            seen_digests: set[str] = set()
            try:
                for manifest in client.list_manifest_properties(
                        repository, results_per_page=page_size,
                        raw_response_hook=_media_type_collector(media_types), **call_options):
                    digest = manifest.digest or ""
                    if digest in seen_digests:
                        log.warning("registry %s: %s@%s listed twice, next repository",
                                    registry, repository, digest)
                        break
                    seen_digests.add(digest)
                    if not manifest.tags:
                        continue  # an index's child or a manifest whose tag moved
                    yield CatalogImage(
                        registry=registry, repository=repository, digest=digest,
                        tags=tuple(sorted(manifest.tags)),
                        media_type=(getattr(manifest, "media_type", None)
                                    or media_types.get(digest, "")),
                    )
                    yielded += 1
                    if yielded >= limit:
                        return
            except ResourceNotFoundError:
                # Deleted between the catalog page and its manifest list.
                log.info("registry %s: repository %s is gone", registry, repository)
    except (AzureError, ValueError) as error:
        raise _azure_error(registry, error) from error


def _media_type_collector(media_types: dict[str, str]) -> Callable[[Any], None]:
    """A ``raw_response_hook`` that records ``mediaType`` per digest from each manifests page.

    The page is ``{"manifests": [{"digest": ..., "mediaType": ..., "tags": [...]}, ...]}``
    (ACR REST API, Manifests - Get List); anything else is left to the SDK to reject.
    """

    def collect(pipeline_response: Any) -> None:
        try:
            page = json.loads(pipeline_response.http_response.body())
        except (ValueError, RecursionError):
            return
        entries = page.get("manifests") if isinstance(page, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                digest, media_type = entry.get("digest"), entry.get("mediaType")
                if isinstance(digest, str) and isinstance(media_type, str):
                    media_types[digest] = media_type

    return collect


def _azure_error(registry: str, error: Exception) -> ScanError:
    return azure_error(registry, "listing the catalog", error,
                       refused=f"{registry} refused to list its catalog")


# ---------------------------------------------------------------------------------------------
# Any registry through the Distribution API


class _RegistryApi(HttpRegistrySource):
    """``HttpRegistrySource``'s session, auth, retries and deadlines, for registry-level
    paths."""

    def __init__(self, registry: str, *, credentials: BasicCredentials | None) -> None:
        super().__init__(registry, "", credentials=credentials)
        self.root = f"{'http' if is_insecure_host(registry) else 'https'}://{registry}"

    def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
             ) -> requests.Response:
        """One request (retried when transient, a 401 answered with the challenge's scope),
        its body not read."""
        deadline = _Deadline(self._limits.manifest_deadline, f"{method} {urlsplit(url).path}")
        return self._retrying(lambda: self._refused(
            method, url, self._challenged(method, url, deadline, headers=headers)), deadline)

    def fetch(self, url: str, cap: int, what: str, *, headers: dict[str, str] | None = None,
              ) -> tuple[requests.Response, bytes]:
        """A GET and, when it is a 200, its body (at most ``cap`` bytes), retried as a whole:
        a reset in the middle of a page is as transient as a 503."""
        deadline = _Deadline(self._limits.manifest_deadline, what)

        def attempt() -> tuple[requests.Response, bytes]:
            response = self._refused("GET", url,
                                     self._challenged("GET", url, deadline, headers=headers))
            if response.status_code != 200:
                response.close()
                return response, b""
            return response, self._read_capped(response, cap, what, deadline)

        return self._retrying(attempt, deadline)

    def _refused(self, method: str, url: str, response: requests.Response) -> requests.Response:
        if response.status_code in (401, 403):
            response.close()
            raise AuthError(f"{self.registry} refused {method} {urlsplit(url).path} "
                            f"({response.status_code})")
        return response


def _list_distribution(api: _RegistryApi, *, page_size: int,
                       limit: int) -> Iterator[CatalogImage]:
    yielded = 0
    catalog = _paged(api, f"{api.root}/v2/_catalog?n={page_size}", "repositories", "catalog",
                     gone_ok=False)
    for repository in catalog:
        if not _REPOSITORY_RE.fullmatch(repository):
            log.warning("registry %s: skipping malformed repository name %r", api.registry,
                        repository)
            continue
        for image in _repository_images(api, repository, page_size=page_size):
            yield image
            yielded += 1
            if yielded >= limit:
                return


def _repository_images(api: _RegistryApi, repository: str, *,
                       page_size: int) -> Iterator[CatalogImage]:
    by_digest: dict[str, tuple[str, list[str]]] = {}
    tags_url = f"{api.root}/v2/{repository}/tags/list?n={page_size}"
    for tag in _paged(api, tags_url, "tags", f"tags of {repository}", gone_ok=True):
        if not _TAG_RE.fullmatch(tag):
            log.warning("registry %s: skipping malformed tag %r in %s", api.registry, tag,
                        repository)
            continue
        found = _tag_digest(api, repository, tag)
        if found is None:
            continue
        digest, media_type = found
        by_digest.setdefault(digest, (media_type, []))[1].append(tag)
    for digest, (media_type, tags) in by_digest.items():
        yield CatalogImage(registry=api.registry, repository=repository, digest=digest,
                           tags=tuple(sorted(tags)), media_type=media_type)


def _tag_digest(api: _RegistryApi, repository: str, tag: str) -> tuple[str, str] | None:
    """The digest and media type ``tag`` points at; ``None`` when the tag is gone."""
    url = f"{api.root}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": ACCEPT}
    response = api.send("HEAD", url, headers=headers)
    response.close()
    if response.status_code == 404:
        log.info("registry %s: tag %s:%s is gone", api.registry, repository, tag)
        return None
    if response.status_code != 200:
        raise RegistryError(f"{api.registry}: HEAD {repository}:{tag} answered "
                            f"{response.status_code}")
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    digest = response.headers.get("Docker-Content-Digest", "")
    if _DIGEST_RE.fullmatch(digest):
        return digest, media_type
    # The header is optional (distribution-spec "Pulling manifests"): hash the manifest itself.
    response, data = api.fetch(url, MAX_MANIFEST_BYTES, f"manifest {repository}:{tag}",
                               headers=headers)
    if response.status_code != 200:
        raise RegistryError(f"{api.registry}: GET {repository}:{tag} answered "
                            f"{response.status_code}")
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or media_type
    return sha256_digest(data), media_type


def _paged(api: _RegistryApi, url: str, key: str, what: str, *,
           gone_ok: bool) -> Iterator[str]:
    """The strings under ``key`` on every page.

    With ``gone_ok`` a 404 means the thing was deleted since it was listed: nothing to yield.
    Without it a 404 is an error: a registry without a catalog (Docker Hub, GHCR) cannot be
    caught up, and saying so beats listing nothing.
    """
    seen_urls = {url}
    while True:
        response, body = api.fetch(url, MAX_PAGE_BYTES, what)
        if response.status_code == 404 and gone_ok:
            log.info("registry %s: %s gone", api.registry, what)
            return
        if response.status_code != 200:
            raise RegistryError(f"{api.registry}: GET {what} answered {response.status_code}")
        link = response.headers.get("Link", "")
        items = _page_items(api.registry, body, key, what)
        yield from items
        next_url = _next_url(api, url, link)
        if next_url is None or not items:
            return
        if next_url in seen_urls:
            log.warning("registry %s: %s pages loop back to %s, stopping", api.registry, what,
                        next_url)
            return
        seen_urls.add(next_url)
        url = next_url


def _page_items(registry: str, body: bytes, key: str, what: str) -> list[str]:
    try:
        page = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise RegistryError(f"{registry}: {what} page is not JSON: {error}") from error
    if not isinstance(page, dict):
        raise RegistryError(f"{registry}: {what} page is not a JSON object")
    # Distribution answers "tags": null for a repository whose tags were all deleted.
    items = page.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise RegistryError(f"{registry}: {what} page has no list of strings under {key!r}")
    return items


def _next_url(api: _RegistryApi, url: str, link_header: str) -> str | None:
    match = _NEXT_LINK_RE.search(link_header)
    if match is None:
        return None
    next_url = urljoin(url, match.group(1))
    # Credentials go only to the registry itself: a link elsewhere is the registry's fault.
    if urlsplit(next_url)[:2] != urlsplit(api.root)[:2]:
        raise RegistryError(f"{api.registry}: next page link leaves the registry: {next_url}")
    return next_url
