"""Plain HTTP endpoints that are not part of the results API."""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


@bp.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"status": "ok"}), mimetype="application/json")
