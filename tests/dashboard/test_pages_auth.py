"""Dashboard sign-in and CSRF, before any page reads the store."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from scanning.dashboard import auth
from scanning.dashboard.pages import DashboardRequest, DashboardResponse, handle
from scanning.store import Store

KEY = "dashboard-test-key"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _no_store() -> Store:
    raise AssertionError("the store is read only after sign-in")


def _request(method: str = "GET", path: str = "", *, query: dict[str, str] | None = None,
             form: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> DashboardResponse:
    return handle(_no_store, DashboardRequest(
        method=method, path=path, query=query or {}, form=form or {}, cookies=cookies or {},
        headers=headers or {}), NOW)


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_KEY", KEY)
    monkeypatch.delenv("API_ENTRA_AUTH", raising=False)


def _session() -> dict[str, str]:
    return {auth.SESSION_COOKIE: auth.session_value(KEY)}


def test_code_sets_an_httponly_cookie_and_drops_the_code() -> None:
    response = _request(path="images", query={"code": KEY, "status": "unhealthy"})
    assert (response.status, response.headers) == (303, (
        ("Location", "/images?status=unhealthy"),
        ("Set-Cookie", f"{auth.SESSION_COOKIE}={auth.session_value(KEY)}; Path=/; HttpOnly; "
                       "SameSite=Strict")))


def test_the_cookie_does_not_hold_the_key() -> None:
    assert KEY not in auth.session_value(KEY)


def test_without_a_session_the_sign_in_form_is_shown() -> None:
    response = _request()
    assert (response.status, 'name="key"' in response.body, "role=\"alert\"" in response.body) \
        == (401, True, False)


def test_a_cookie_from_an_older_key_says_the_sign_in_expired() -> None:
    response = _request(cookies={auth.SESSION_COOKIE: auth.session_value("old-key")})
    assert (response.status, "Your sign-in has expired; sign in again." in response.body) == (
        401, True)


def test_a_post_without_a_session_says_the_sign_in_expired() -> None:
    response = _request("POST", "rules/create", form={"justification": "x"})
    assert (response.status, "Your sign-in has expired; sign in again." in response.body) == (
        401, True)


def test_a_post_with_a_wrong_csrf_token_is_403() -> None:
    response = _request("POST", "rules/delete", form={"id": "r1", "csrf": "forged"},
                        cookies=_session())
    assert (response.status, "This form is out of date" in response.body) == (403, True)


def test_sign_out_clears_the_cookie() -> None:
    response = _request("POST", "signout", form={"csrf": auth.csrf_token("key", KEY)},
                        cookies=_session())
    assert (response.status, response.headers) == (303, (
        ("Location", "/"), ("Set-Cookie", auth.cleared_cookie())))


def test_without_a_dashboard_key_sign_in_by_key_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_KEY", "")
    response = _request("POST", "signin", form={"key": ""})
    assert (response.status,
            "Sign-in by key is off: DASHBOARD_KEY is not set." in response.body) == (401, True)


def test_an_unknown_page_is_404() -> None:
    assert _request(path="nowhere", cookies=_session()).status == 404


def test_an_entra_principal_is_signed_in_when_app_service_auth_is_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
        {"typ": "oid", "val": "0000-user"}]}).encode()).decode()
    assert auth.signed_in_as({}, {"x-ms-client-principal": principal}) == "0000-user"


def test_with_app_service_auth_the_sign_in_form_links_to_entra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    assert ('<a href="/.auth/login/aad?post_login_redirect_uri=/">'
            "Sign in with Microsoft Entra ID</a>") in _request().body


def test_without_app_service_auth_the_sign_in_form_has_no_entra_link() -> None:
    assert "/.auth/login/aad" not in _request().body


def _principal(*claims: tuple[str, str]) -> dict[str, str]:
    return {"x-ms-client-principal": base64.b64encode(json.dumps({
        "auth_typ": "aad", "claims": [{"typ": typ, "val": val} for typ, val in claims]}
    ).encode()).decode()}


@pytest.fixture()
def allowed_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    monkeypatch.setenv("DASHBOARD_ALLOWED_GROUP", "6a1d0000-group")


@pytest.mark.usefixtures("allowed_group")
def test_a_member_of_the_allowed_group_gets_past_sign_in() -> None:
    # An unknown page: past sign-in, without reading the store.
    response = _request(path="nowhere", headers=_principal(
        ("oid", "0000-user"), ("groups", "1111-other"), ("groups", "6A1D0000-GROUP")))
    assert (response.status, "No page nowhere." in response.body) == (404, True)


@pytest.mark.usefixtures("allowed_group")
def test_an_entra_user_outside_the_allowed_group_is_refused() -> None:
    response = _request(path="nowhere", headers=_principal(("oid", "0000-user"),
                                                           ("groups", "1111-other")))
    assert (response.status, "Your account is not a member of the group allowed to use this "
            "dashboard." in response.body) == (403, True)


@pytest.mark.usefixtures("allowed_group")
def test_a_token_with_a_groups_overage_cannot_be_checked_and_is_refused() -> None:
    response = _request(path="nowhere", headers=_principal(
        ("oid", "0000-user"), ("_claim_names", '{"groups": "src1"}')))
    assert (response.status, "does not list your groups" in response.body) == (403, True)


@pytest.mark.usefixtures("allowed_group")
def test_the_key_signs_in_whatever_the_allowed_group() -> None:
    assert _request(path="nowhere", cookies=_session()).status == 404


def test_with_entra_only_forms_are_signed_by_the_secret_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_KEY", "")
    monkeypatch.setenv("API_ENTRA_AUTH", "true")
    monkeypatch.setenv("DASHBOARD_SECRET", "a-secret")
    token = auth.csrf_token("0000-user", "a-secret")
    response = _request("POST", "signout", form={"csrf": token},
                        headers=_principal(("oid", "0000-user")))
    assert (response.status, auth.csrf_ok("0000-user", "forged", "a-secret")) == (303, False)
