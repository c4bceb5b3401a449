"""The web dashboard's HTTP function, at the site root: ``/``, ``/images``, ``/rules``...

host.json's ``routePrefix`` is empty and every API route is ``api/...``, so the dashboard can
take the root (Azure also needs ``AzureWebJobsDisableHomepage``, set by infra/). Literal
routes rank before this catch-all in ASP.NET Core routing, as in the local host; a path under
``api/`` that reaches this function is an API path no function serves, and gets a JSON 404,
not a page.

The route is anonymous for the Functions host because the dashboard signs in by itself
(``scanning.dashboard.auth``): a browser keeps a cookie, not a ``code`` on every link.
The pages and their tests live in ``scanning.dashboard``.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

import azure.durable_functions as df
import azure.functions as func

from scanning.dashboard.pages import DashboardRequest, handle
from scanning.functions.api import now, store
from scanning.httpjson import error_body

bp = df.Blueprint()

# A form larger than this is not one of the dashboard's (an OpenVEX import is the largest).
MAX_FORM_BYTES = 4 * 1024 * 1024
_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _form(req: func.HttpRequest) -> dict[str, str]:
    content_type = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = req.get_body() or b""
    if content_type != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


@bp.route(route="{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    path = str(req.route_params.get("path", ""))
    if path.lower() == "api" or path.lower().startswith("api/"):
        return func.HttpResponse(
            json.dumps(error_body("NotFound", f"no API function serves {req.method.upper()} "
                                              f"/{path[:200]}")),
            status_code=404, mimetype="application/json")
    request = DashboardRequest(
        method=req.method.upper(), path=path,
        query=dict(req.params), form=_form(req) if req.method.upper() == "POST" else {},
        cookies=_cookies(req.headers.get("cookie", "")),
        headers={name.lower(): value for name, value in req.headers.items()},
        secure=req.url.lower().startswith("https://"))
    response = handle(store, request, now())
    headers = {**_SECURITY_HEADERS, **dict(response.headers)}
    return func.HttpResponse(response.body, status_code=response.status, headers=headers,
                             mimetype=response.content_type, charset="utf-8")
