"""Dashboard sign-in and CSRF tokens, without server-side sessions.

Locally the dashboard key (``DASHBOARD_KEY``, the function key ``local up`` generates) signs
in: ``?code=KEY`` or the sign-in form set an HttpOnly cookie holding an HMAC of the key, so
the cookie is worth nothing once the key changes and the key itself never sits in the
browser. With App Service Authentication on (``API_ENTRA_AUTH=true``) the Entra principal
App Service vouches for signs in as well; with ``DASHBOARD_ALLOWED_GROUP`` set, only members
of that Entra group (by its ``groups`` claims). A form that changes state carries a CSRF
token: an HMAC of who is signed in, under ``DASHBOARD_SECRET``, else the key, else a random
secret the store keeps in its ``meta`` table; the cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from scanning.config import setting
from scanning.principal import entra_auth_enabled, principal_groups, principal_id
from scanning.store import Store

SESSION_COOKIE = "acrscan_session"
_SESSION_LABEL = b"acr-scan dashboard session v1"
_CSRF_LABEL = b"acr-scan dashboard csrf v1:"


def dashboard_key() -> str:
    return setting("DASHBOARD_KEY")


def csrf_secret(store_of: Callable[[], Store]) -> str:
    """What signs CSRF tokens: ``DASHBOARD_SECRET``, else the key, else a random secret the
    store keeps (Entra sign-in only, nothing set)."""
    return setting("DASHBOARD_SECRET") or dashboard_key() or store_of().dashboard_secret()


def session_value(key: str) -> str:
    return hmac.new(key.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def key_ok(supplied: str, key: str) -> bool:
    return bool(key) and hmac.compare_digest(supplied.encode(), key.encode())


def signed_in_as(cookies: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """Who the request is from ("key" or the Entra object id); None when not signed in."""
    key = dashboard_key()
    cookie = cookies.get(SESSION_COOKIE, "")
    if key and cookie and hmac.compare_digest(cookie.encode(), session_value(key).encode()):
        return "key"
    if entra_auth_enabled():
        return principal_id(headers)
    return None


def entra_refusal(identity: str, headers: Mapping[str, str]) -> str:
    """Why a signed-in Entra principal may not use the dashboard; empty when it may."""
    allowed = setting("DASHBOARD_ALLOWED_GROUP").strip()
    if identity == "key" or not allowed:
        return ""
    groups = principal_groups(headers)
    if groups is None:
        return ("Your sign-in token does not list your groups (more than 200, or the app "
                "registration emits no group claims), so membership of the allowed group "
                "cannot be checked.")
    if allowed.lower() not in {group.lower() for group in groups}:
        return "Your account is not a member of the group allowed to use this dashboard."
    return ""


def csrf_token(identity: str, secret: str) -> str:
    """The token forms carry for ``identity``."""
    if not secret:
        raise ValueError("a CSRF token needs a secret")
    return hmac.new(secret.encode(), _CSRF_LABEL + identity.encode(),
                    hashlib.sha256).hexdigest()


def csrf_ok(identity: str, supplied: str, secret: str) -> bool:
    return hmac.compare_digest(supplied.encode(), csrf_token(identity, secret).encode())


def session_cookie(key: str, secure: bool) -> str:
    return (f"{SESSION_COOKIE}={session_value(key)}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def cleared_cookie() -> str:
    return f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
