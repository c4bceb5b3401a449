"""Indexing the function app finds every function with the trigger Azure will wire up."""

from __future__ import annotations

from function_app import app
from scanning.local.host import index_app

REGISTRY_ASSESSMENT = ("api/subscriptions/{subscription}/resourceGroups/{group}/providers/"
                       "Microsoft.ContainerRegistry/registries/{registry}/providers/"
                       "Microsoft.Security/assessments/{key}")


def test_every_function_has_the_right_trigger() -> None:
    assert sorted((item.name, item.trigger_type) for item in index_app(app).functions) == [
        ("analyze_layer", "activityTrigger"),
        ("api_billing", "httpTrigger"),
        ("api_create_rules", "httpTrigger"),
        ("api_delete_rule", "httpTrigger"),
        ("api_get_image", "httpTrigger"),
        ("api_get_rescan", "httpTrigger"),
        ("api_get_scan", "httpTrigger"),
        ("api_list_images", "httpTrigger"),
        ("api_list_rules", "httpTrigger"),
        ("api_list_scans", "httpTrigger"),
        ("api_query_findings", "httpTrigger"),
        ("api_start_scan", "httpTrigger"),
        ("assess_image", "activityTrigger"),
        ("catch_up", "timerTrigger"),
        ("dashboard", "httpTrigger"),
        ("dashboard_summary", "timerTrigger"),
        ("defender_get_assessment", "httpTrigger"),
        ("defender_get_sub_assessment", "httpTrigger"),
        ("defender_list_sub_assessments", "httpTrigger"),
        ("defender_list_subscription_sub_assessments", "httpTrigger"),
        ("fail_rescan_chunk", "activityTrigger"),
        ("fail_scan", "activityTrigger"),
        ("find_parent_index", "activityTrigger"),
        ("finish_rescan", "activityTrigger"),
        ("health", "httpTrigger"),
        ("on_registry_event", "eventGridTrigger"),
        ("plan_rescan", "activityTrigger"),
        ("prepare_scan", "activityTrigger"),
        ("refresh_advisories", "timerTrigger"),
        ("rescan_chunk", "activityTrigger"),
        ("rescan_chunk_guarded", "orchestrationTrigger"),
        ("rescan_images", "orchestrationTrigger"),
        ("scan_image", "orchestrationTrigger"),
        ("sync_pulls", "timerTrigger"),
        ("weekly_rescan", "timerTrigger"),
    ]


def test_http_routes_methods_and_auth_levels() -> None:
    routes = sorted(
        (item.route.template, tuple(sorted(item.methods or ())), item.auth_level)
        for item in index_app(app).functions if item.route is not None)
    assert routes == [
        ("api/billing", ("GET",), "function"),
        ("api/findings", ("GET",), "function"),
        ("api/health", ("GET",), "anonymous"),
        ("api/images", ("GET",), "function"),
        ("api/images/{digest}", ("GET",), "function"),
        ("api/rescans/{id}", ("GET",), "function"),
        ("api/rules", ("GET",), "function"),
        ("api/rules", ("POST",), "function"),
        ("api/rules/{id}", ("DELETE",), "function"),
        ("api/scans", ("GET",), "function"),
        ("api/scans", ("POST",), "function"),
        ("api/scans/{id}", ("GET",), "function"),
        ("api/subscriptions/{subscription}/providers/Microsoft.Security/subAssessments",
         ("GET",), "function"),
        (REGISTRY_ASSESSMENT, ("GET",), "function"),
        (f"{REGISTRY_ASSESSMENT}/subAssessments", ("GET",), "function"),
        (f"{REGISTRY_ASSESSMENT}/subAssessments/{{name}}", ("GET",), "function"),
        ("{*path}", ("GET", "POST"), "anonymous"),
    ]
