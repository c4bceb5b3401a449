"""The caller App Service Authentication (Easy Auth) vouches for, from ``X-MS-CLIENT-PRINCIPAL``.

With Entra ID authentication on (``API_ENTRA_AUTH=true``, set by Bicep together with the
site's ``authsettingsV2``), App Service validates the bearer token (issuer, audience, expiry)
before the request reaches the app, strips any client-sent ``X-MS-CLIENT-PRINCIPAL*`` headers
and sets its own: base64 JSON ``{"auth_typ": "aad", "claims": [{"typ": ..., "val": ...}],
...}``. The app only checks that header is there and well formed, and names the caller.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping

from scanning.config import setting
from scanning.errors import ConfigError

PRINCIPAL_HEADER = "x-ms-client-principal"
MAX_PRINCIPAL_LENGTH = 64 * 1024
# Object id of the user or service principal; the short name when the token maps claims.
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
# Group membership, as App Service maps it (the long name) or as the token has it.
_GROUP_CLAIMS = ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")


def entra_auth_enabled() -> bool:
    value = setting("API_ENTRA_AUTH").strip().lower()
    if value not in ("", "true", "false"):
        raise ConfigError(f"API_ENTRA_AUTH must be true or false, got {value!r}")
    return value == "true"


def _claims(headers: Mapping[str, str]) -> list[dict[str, object]] | None:
    """The claims of the Entra principal App Service vouches for; None when there is none."""
    raw = next((value for name, value in headers.items()
                if name.lower() == PRINCIPAL_HEADER), "")
    if not raw or len(raw) > MAX_PRINCIPAL_LENGTH:
        return None
    try:
        data = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or str(data.get("auth_typ", "")).lower() != "aad":
        return None
    claims = data.get("claims")
    if not isinstance(claims, list):
        return None
    return [claim for claim in claims if isinstance(claim, dict)]


def principal_id(headers: Mapping[str, str]) -> str | None:
    """The Entra object id of the authenticated caller; None when there is none."""
    for claim in _claims(headers) or ():
        if claim.get("typ") in _OBJECT_ID_CLAIMS and isinstance(claim.get("val"), str) \
                and claim["val"]:
            return str(claim["val"])
    return None


def principal_groups(headers: Mapping[str, str]) -> frozenset[str] | None:
    """The group object ids in the caller's token (``groups`` claims); None when the token
    does not list them all: Entra leaves them out past 200 groups (a ``_claim_names``
    "groups" overage claim points to Microsoft Graph instead) or when the app registration
    does not emit group claims. An empty set is a token that lists no group."""
    claims = _claims(headers)
    if claims is None:
        return None
    groups = frozenset(str(claim["val"]) for claim in claims
                       if claim.get("typ") in _GROUP_CLAIMS and isinstance(claim.get("val"), str))
    overage = any(claim.get("typ") == "_claim_names" and "groups" in str(claim.get("val", ""))
                  for claim in claims)
    return None if overage else groups


KEY_HEADER = "x-functions-key"


def api_keys() -> tuple[str, ...]:
    """The keys ``API_KEYS`` lists (comma separated): what the app itself checks when the
    Functions host does not (the routes are anonymous to it while Entra ID is on)."""
    return tuple(key.strip() for key in setting("API_KEYS").split(",") if key.strip())


def supplied_key(headers: Mapping[str, str], params: Mapping[str, str]) -> str:
    """The key a request carries, as the Functions host reads it: the ``x-functions-key``
    header, else the ``code`` query parameter."""
    header = next((value for name, value in headers.items() if name.lower() == KEY_HEADER), "")
    return header or params.get("code", "")


def api_caller(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """Who is calling the API while Entra ID is on: the Entra object id App Service vouches
    for, ``"key"`` for a key ``API_KEYS`` lists, or None (refused)."""
    caller = principal_id(headers)
    if caller is not None:
        return caller
    supplied = supplied_key(headers, params).encode()
    if supplied and any(hmac.compare_digest(supplied, key.encode()) for key in api_keys()):
        return "key"
    return None
