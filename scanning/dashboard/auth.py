"""Dashboard sign-in and CSRF tokens, without server-side sessions.

Locally the dashboard key (``DASHBOARD_KEY``, the function key ``local up`` generates) signs
in: ``?code=KEY`` or the sign-in form set an HttpOnly cookie holding an HMAC of the key, so
the cookie is worth nothing once the key changes and the key itself never sits in the
browser. With App Service Authentication on (``API_ENTRA_AUTH=true``) the Entra principal
App Service vouches for signs in as well. A form that changes state carries a CSRF token: an
HMAC, under the key, of who is signed in; the cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from scanning.config import setting
from scanning.principal import entra_auth_enabled, principal_id

SESSION_COOKIE = "acrscan_session"
_SESSION_LABEL = b"acr-scan dashboard session v1"
_CSRF_LABEL = b"acr-scan dashboard csrf v1:"


def dashboard_key() -> str:
    return setting("DASHBOARD_KEY")


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


def csrf_token(identity: str) -> str:
    """The token forms carry for ``identity``; empty when there is no key to sign it with."""
    key = dashboard_key()
    if not key:
        return ""
    return hmac.new(key.encode(), _CSRF_LABEL + identity.encode(), hashlib.sha256).hexdigest()


def csrf_ok(identity: str, supplied: str) -> bool:
    expected = csrf_token(identity)
    return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())


def session_cookie(key: str, secure: bool) -> str:
    return (f"{SESSION_COOKIE}={session_value(key)}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def cleared_cookie() -> str:
    return f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
