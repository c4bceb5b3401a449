"""Defender's results API over acr-scan's store: the ARM-shaped handlers, without Functions.

``scanning.functions.defender`` routes
``/api/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/
{name}/providers/Microsoft.Security/assessments/{key}[/subAssessments[/{name}]]`` and
``/api/subscriptions/{sub}/providers/Microsoft.Security/subAssessments`` here. Shapes are in
``scanning.defender``; errors and paging are ``scanning.api``'s.

Lists page over images (``pageSize`` images a page, each with all its sub-assessments), read
every image's findings with the current rules (as ``GET images/{digest}`` does) and filter in
memory. A single sub-assessment is found by walking the registry's images: its name is a hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scanning.api import (
    ApiResponse,
    Paging,
    digest_parameter,
    fix_status_parameter,
    paging_parameters,
    severity_parameter,
    text_parameter,
)
from scanning.defender import (
    ASSESSMENT_KEYS,
    ASSESSMENT_TYPE,
    DISPLAY_NAMES,
    MDVM_KEY,
    Filters,
    RegistryIds,
    as_utc,
    assessment_id,
    image_context,
    sub_assessment_name,
    verdict_sub_assessments,
)
from scanning.errors import BadRequest, NotFound
from scanning.model import AssessmentStatus
from scanning.rules import DisableRule
from scanning.service.rules import current_verdict, load_rules
from scanning.store import ImageFilter, ImageRecord, Store

SUB_ASSESSMENT_API_VERSIONS = ("2019-01-01-preview",)
# The parent assessment: the SDK's default (2021-06-01) and the older versions that have it.
ASSESSMENT_API_VERSIONS = ("2019-01-01-preview", "2020-01-01", "2021-06-01")
STATUS_CODES = ("healthy", "unhealthy", "notapplicable")
_WALK_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which registries a request covers: one ARM id, or a whole subscription."""

    ids: RegistryIds
    subscription: str
    registry_id: str = ""  # empty: every registry of the subscription

    def covers(self, registry: str) -> bool:
        known = self.ids.resource_id(registry)
        if known is None:
            return False
        if self.registry_id:
            return known.lower() == self.registry_id.lower()
        return self.ids.in_subscription(registry, self.subscription)

    def registry_filter(self) -> str:
        """The store's registry filter: the one login server when the scope has exactly one."""
        if not self.registry_id:
            return ""
        servers = self.ids.login_servers(self.registry_id)
        if servers == ():
            raise NotFound(f"no registry with resource id {self.registry_id}")
        return servers[0] if servers is not None and len(servers) == 1 else ""


def filters_from(query: Mapping[str, str]) -> Filters:
    digest = text_parameter(query, "digest")
    if digest:
        digest_parameter(digest)
    code = text_parameter(query, "statusCode").lower()
    if code and code not in STATUS_CODES:
        raise BadRequest(f"statusCode must be Healthy, Unhealthy or NotApplicable, got {code!r}")
    since_text = text_parameter(query, "timeGeneratedSince")
    since = None
    if since_text:
        try:
            since = as_utc(datetime.fromisoformat(since_text))
        except ValueError:
            raise BadRequest(f"timeGeneratedSince must be an ISO 8601 time, got "
                             f"{since_text!r}") from None
    return Filters(digest=digest, repository=text_parameter(query, "repository"),
                   severity=severity_parameter(query),
                   fix_status=fix_status_parameter(query), cve=text_parameter(
                       query, "cve"), status_code=code, since=since)


def check_api_version(query: Mapping[str, str], accepted: tuple[str, ...]) -> None:
    version = text_parameter(query, "api-version")
    if version not in accepted:
        raise BadRequest(f"api-version must be {' or '.join(accepted)}, got {version!r}")


def check_key(key: str) -> str:
    lowered = key.lower()
    if lowered not in ASSESSMENT_KEYS:
        raise NotFound(f"no assessment {key[:80]!r}; acr-scan serves "
                       f"{' and '.join(ASSESSMENT_KEYS)}")
    return lowered


def arm_next_link(url: str, token: str | None) -> str | None:
    """``url`` with ``continuationToken`` replaced; ``code`` and ``api-version`` stay, so
    key-in-query clients and the SDK read page 2 as they read page 1."""
    if token is None or not url:
        return None
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key != "continuationToken"]
    query.append(("continuationToken", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---------------------------------------------------------------- per image


def image_sub_assessments(store: Store, scope: Scope, key: str, image: ImageRecord,
                          filters: Filters, rules: tuple[DisableRule, ...],
                          now: datetime) -> Iterator[dict[str, Any]]:
    """The image's sub-assessments under ``key`` with the current rules, filtered."""
    verdict = current_verdict(
        image, store.findings_of(image.registry, image.repository, image.digest), rules, now)
    return verdict_sub_assessments(key, scope.ids.resource_id(image.registry) or "", image,
                                   verdict, filters, now)


def _images(store: Store, scope: Scope, filters: Filters,
            paging: Paging) -> tuple[list[ImageRecord], str | None]:
    registry = scope.registry_filter()  # NotFound for an unknown registry id, first
    if filters.digest:
        found = [image for image in store.images.find_by_digest(filters.digest)
                 if not image.deleted]
        return [image for image in found if scope.covers(image.registry)
                and filters.keeps_image(image)], None
    page = store.images.list(ImageFilter(registry=registry, repository=filters.repository),
                             paging.page_size, paging.token)
    return [image for image in page.items if scope.covers(image.registry)
            and filters.keeps_image(image)], page.next_token


def _all_images(store: Store, scope: Scope) -> Iterator[ImageRecord]:
    token: str | None = None
    registry = scope.registry_filter()
    while True:
        page = store.images.list(ImageFilter(registry=registry), _WALK_PAGE_SIZE, token)
        yield from (image for image in page.items if scope.covers(image.registry))
        if page.next_token is None:
            return
        token = page.next_token


# ---------------------------------------------------------------- handlers


def list_sub_assessments(store: Store, scope: Scope, key: str, query: Mapping[str, str],
                         now: datetime, url: str = "") -> ApiResponse:
    """One page of sub-assessments; ``key`` empty means both keys (the subscription list)."""
    check_api_version(query, SUB_ASSESSMENT_API_VERSIONS)
    keys = (check_key(key),) if key else ASSESSMENT_KEYS
    filters = filters_from(query)
    paging = paging_parameters(query)
    images, token = _images(store, scope, filters, paging)
    rules = load_rules(store)
    items: list[dict[str, Any]] = []
    for image in images:
        # Read and decided once per image, whatever the number of keys.
        verdict = current_verdict(
            image, store.findings_of(image.registry, image.repository, image.digest), rules,
            now)
        registry_id = scope.ids.resource_id(image.registry) or ""
        for each_key in keys:
            items.extend(verdict_sub_assessments(each_key, registry_id, image, verdict, filters,
                                                 now))
    return ApiResponse(status=200, body={"value": items, "nextLink": arm_next_link(url, token)})


def get_sub_assessment(store: Store, scope: Scope, key: str, name: str,
                       query: Mapping[str, str], now: datetime) -> ApiResponse:
    check_api_version(query, SUB_ASSESSMENT_API_VERSIONS)
    key = check_key(key)
    try:
        wanted = str(uuid.UUID(name))
    except ValueError:
        raise NotFound(f"no sub-assessment {name[:80]!r}") from None
    rules = load_rules(store)
    everything = Filters()
    for image in _all_images(store, scope):
        if not _may_hold(key, image, wanted, store, rules, now):
            continue
        for item in image_sub_assessments(store, scope, key, image, everything, rules, now):
            if item["name"] == wanted:
                return ApiResponse(status=200, body=item)
    raise NotFound(f"no sub-assessment {wanted} under assessment {key}")


def _may_hold(key: str, image: ImageRecord, wanted: str, store: Store,
              rules: tuple[DisableRule, ...], now: datetime) -> bool:
    """Whether one of the image's names is ``wanted``, from names alone (no JSON built)."""
    verdict = current_verdict(
        image, store.findings_of(image.registry, image.repository, image.digest), rules, now)
    if verdict is None or not any(result.findings for result in verdict.platforms):
        return sub_assessment_name(key, image_context(image, "", now), None) == wanted
    return any(sub_assessment_name(key, image_context(image, result.platform, now), finding)
               == wanted for result in verdict.platforms for finding in result.findings)


def get_assessment(store: Store, scope: Scope, key: str,
                   query: Mapping[str, str]) -> ApiResponse:
    """The registry's assessment: Unhealthy when an image has active findings, Healthy only
    when every image was fully assessed healthy, else NotApplicable (nothing, or not all,
    read). From the stored verdicts, which rule changes keep current."""
    check_api_version(query, ASSESSMENT_API_VERSIONS)
    key = check_key(key)
    total = unhealthy = healthy = 0
    for image in _all_images(store, scope):
        total += 1
        if image.status is AssessmentStatus.UNHEALTHY or image.counts.active_total:
            unhealthy += 1
        elif image.status is AssessmentStatus.HEALTHY:
            healthy += 1
    other = total - unhealthy - healthy
    if unhealthy:
        code, cause = "Unhealthy", ""
    elif total and healthy == total:
        code, cause = "Healthy", ""
    else:
        code, cause = "NotApplicable", "NoImages" if not total else "NotFullyAssessed"
    description = (f"{unhealthy} unhealthy, {healthy} healthy and {other} not fully assessed "
                   f"of {total} images")
    return ApiResponse(status=200, body={
        "id": assessment_id(scope.registry_id, key), "name": key, "type": ASSESSMENT_TYPE,
        "properties": {
            "displayName": DISPLAY_NAMES[key],
            "resourceDetails": {"source": "Azure", "id": scope.registry_id},
            "status": {"code": code, "cause": cause or None, "description": description},
            "additionalData": {"images": str(total), "unhealthyImages": str(unhealthy),
                               "healthyImages": str(healthy),
                               "notFullyAssessedImages": str(other),
                               "format": "MDVM" if key == MDVM_KEY else "Qualys"},
        },
    })
