"""Indexing the function app finds every function with the trigger Azure will wire up."""

from __future__ import annotations

from function_app import app
from scanning.local.host import index_app


def test_every_function_has_the_right_trigger() -> None:
    assert sorted((item.name, item.trigger_type) for item in index_app(app).functions) == [
        ("get_events", "httpTrigger"),
        ("get_scan", "httpTrigger"),
        ("health", "httpTrigger"),
        ("list_events", "httpTrigger"),
        ("on_registry_event", "eventGridTrigger"),
        ("record_event", "activityTrigger"),
        ("scan_image", "orchestrationTrigger"),
        ("start_scan", "httpTrigger"),
    ]


def test_http_routes_methods_and_auth_levels() -> None:
    routes = sorted(
        (item.route.template, tuple(sorted(item.methods or ())), item.auth_level)
        for item in index_app(app).functions if item.route is not None)
    assert routes == [
        ("events", ("GET",), "function"),
        ("events/{digest}", ("GET",), "function"),
        ("health", ("GET",), "anonymous"),
        ("scans", ("POST",), "function"),
        ("scans/{instance_id}", ("GET",), "function"),
    ]
