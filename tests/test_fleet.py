"""Registries of whole subscriptions from ARM, through the management SDK with a stub
transport (the SDK's seam: no network): pages followed, failures typed, one subscription's
failure not hiding the others'."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest
import requests
import requests.adapters
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from scanning.errors import RegistryError, TransientRegistryError
from scanning.fleet import fleet_registries, subscription_registries

ARM = "https://management.azure.com"
SUB_A = "00000000-0000-0000-0000-00000000000a"
SUB_B = "00000000-0000-0000-0000-00000000000b"


def registry(subscription: str, name: str) -> dict[str, Any]:
    """One item of ARM's Registries_List answer (Microsoft.ContainerRegistry REST spec)."""
    return {"id": f"/subscriptions/{subscription}/resourceGroups/rg/providers/"
                  f"Microsoft.ContainerRegistry/registries/{name}",
            "name": name, "type": "Microsoft.ContainerRegistry/registries",
            "location": "westeurope", "sku": {"name": "Premium", "tier": "Premium"},
            "properties": {"loginServer": f"{name}.azurecr.io", "provisioningState": "Succeeded",
                           "adminUserEnabled": False}}


class Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("arm-token", int(time.time()) + 3600)


class ArmStub(requests.adapters.BaseAdapter):
    """ARM as a ``requests`` adapter under the SDK's own ``RequestsTransport``: answers GETs
    by path (and ``$skipToken``) from ``answers`` and records what was asked."""

    def __init__(self, answers: dict[str, tuple[int, dict[str, Any]]]) -> None:
        super().__init__()
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        path = url.split("?")[0].removeprefix(ARM)
        key = path + ("#2" if "skipToken" in url else "")
        self.asked.append((key, str(request.headers.get("Authorization", ""))))
        status, body = self.answers.get(key, (404, {"error": {"code": "NotFound",
                                                              "message": key}}))
        content = json.dumps(body).encode()
        response = requests.Response()
        response.status_code = status
        response.raw = urllib3.HTTPResponse(body=io.BytesIO(content), status=status,
                                            preload_content=False)
        response._content = content
        response.headers["Content-Type"] = "application/json"
        response.url = url
        response.request = request
        return response

    def close(self) -> None:
        pass

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        session.mount(ARM, self)
        return RequestsTransport(session=session, session_owner=False)


def listing(subscription: str) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.ContainerRegistry/registries"


def two_pages(subscription: str) -> dict[str, tuple[int, dict[str, Any]]]:
    path = listing(subscription)
    return {
        path: (200, {"value": [registry(subscription, "prodacr")],
                     "nextLink": f"{ARM}{path}?api-version=2025-04-01&$skipToken=p2"}),
        path + "#2": (200, {"value": [registry(subscription, "devacr")]}),
    }


def test_listing_follows_the_pages_with_the_apps_token() -> None:
    stub = ArmStub(two_pages(SUB_A))
    found = subscription_registries(Credential(), SUB_A, transport=stub.transport())
    assert (found, stub.asked) == (
        ("devacr.azurecr.io", "prodacr.azurecr.io"),
        [(listing(SUB_A), "Bearer arm-token"), (listing(SUB_A) + "#2", "Bearer arm-token")])


def test_a_throttled_listing_is_transient() -> None:
    stub = ArmStub({listing(SUB_A): (429, {"error": {"code": "TooManyRequests",
                                                     "message": "slow down"}})})
    with pytest.raises(TransientRegistryError) as caught:
        subscription_registries(Credential(), SUB_A, transport=stub.transport(), retry_total=0)
    assert str(caught.value) == (f"listing registries of subscription {SUB_A}: HTTP 429 "
                                 "(TooManyRequests) slow down\nCode: TooManyRequests\n"
                                 "Message: slow down")


def test_a_forbidden_listing_is_not_retryable() -> None:
    stub = ArmStub({listing(SUB_A): (403, {"error": {"code": "AuthorizationFailed",
                                                     "message": "no Reader role"}})})
    with pytest.raises(RegistryError) as caught:
        subscription_registries(Credential(), SUB_A, transport=stub.transport())
    assert (type(caught.value), caught.value.retryable) == (RegistryError, False)


def test_fleet_is_the_static_list_then_each_subscription_once(
        caplog: pytest.LogCaptureFixture) -> None:
    stub = ArmStub({**two_pages(SUB_B),
                    listing(SUB_A): (403, {"error": {"code": "AuthorizationFailed",
                                                     "message": "no Reader role"}})})
    with caplog.at_level(logging.ERROR, logger="scanning.fleet"):
        found = fleet_registries(["prodacr.azurecr.io", "other.example"], [SUB_A, SUB_B],
                                 Credential(), transport=stub.transport())
    assert (found, [message.split(":")[0] for message in caplog.messages]) == (
        ("prodacr.azurecr.io", "other.example", "devacr.azurecr.io"), ["catch-up"])
