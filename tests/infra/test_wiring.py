"""The templates wire what the app needs: its settings, and events to its Event Grid function.

The app side is read at test time (``scanning.config.SETTINGS``, ``scanning.events.EVENT_TYPES``
and the functions ``function_app.app`` registers), so a setting or function added later is
checked without touching this file. The template side is read from the tree-sitter parse trees.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import tree_sitter
from bicepcheck import (
    declaration_body,
    declared_name,
    named_children,
    property_value,
    string_value,
    text,
    walk,
)
from wiring import (
    FLEX_FORBIDDEN_SETTINGS,
    HOST_STORAGE,
    Deployment,
    EventSubscription,
    missing_settings,
    subscription_problems,
)

from scanning.config import SETTINGS
from scanning.events import EVENT_TYPES
from scanning.local.host import APP_HOST_JSON, route_prefix_of

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAIN = PROJECT_ROOT / "infra" / "main.bicep"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment.load(MAIN)


def app_functions() -> dict[str, str]:
    """Function name -> trigger type, as registered by function_app.py."""
    function_app = importlib.import_module("function_app")
    return {
        function.get_function_name(): function.get_trigger().type
        for function in function_app.app.get_functions()
    }


# -- the real templates against the real app -------------------------------------------------


def test_template_sets_every_setting_the_code_reads(deployment: Deployment) -> None:
    assert missing_settings(SETTINGS, deployment.app_settings()) == []


def test_the_dashboard_takes_the_site_root_without_the_functions_home_page(
        deployment: Deployment) -> None:
    node, _ = deployment.resolve(*deployment.app_settings()["AzureWebJobsDisableHomepage"])
    assert (text(node), route_prefix_of(APP_HOST_JSON)) == ("'true'", "")


def test_host_storage_uses_identity_settings_not_a_connection_string(
    deployment: Deployment,
) -> None:
    settings = deployment.app_settings()
    assert HOST_STORAGE not in settings
    assert text(settings[f"{HOST_STORAGE}__credential"][0]) == "'managedidentity'"


def is_list_call(node: tree_sitter.Node) -> bool:
    """listKeys(...), account.listKeys(), listAccountSas(...): ways to read account keys."""
    if node.type != "call_expression":
        return False
    function = node.child_by_field_name("function")
    if function is not None and function.type == "member_expression":
        function = function.child_by_field_name("property")
    return function is not None and text(function).startswith("list")


def test_templates_never_read_storage_keys(deployment: Deployment) -> None:
    key_calls = [
        f"{template.path.name}:{node.start_point[0] + 1}"
        for template in deployment.templates
        for node in walk(template.tree.root_node)
        if is_list_call(node)
    ]
    assert key_calls == []


def test_template_sets_no_runtime_setting_that_flex_consumption_rejects(
    deployment: Deployment,
) -> None:
    assert sorted(FLEX_FORBIDDEN_SETTINGS & deployment.app_settings().keys()) == []


def test_event_subscription_delivers_the_code_event_types_to_its_event_grid_function(
    deployment: Deployment,
) -> None:
    problems = subscription_problems(deployment.event_subscriptions(), app_functions(), EVENT_TYPES)
    assert problems == []


def test_function_app_runs_python_3_11_on_flex_consumption(deployment: Deployment) -> None:
    found = {}
    for template in deployment.templates:
        for resource_type, declaration in template.resources():
            if resource_type == "Microsoft.Web/serverfarms":
                sku = _path(declaration, "sku")
                found["plan"] = (string_value(_path(sku, "name")), string_value(_path(sku, "tier")))
            if resource_type == "Microsoft.Web/sites":
                runtime = _path(declaration, "properties", "functionAppConfig", "runtime")
                found["runtime"] = (
                    string_value(_path(runtime, "name")),
                    string_value(_path(runtime, "version")),
                )
    assert found == {"plan": ("FC1", "FlexConsumption"), "runtime": ("python", "3.11")}


def test_storage_account_is_keyless_tls12_and_private_to_anonymous_readers(
    deployment: Deployment,
) -> None:
    accounts = [
        {
            key: _source(_path(declaration, "properties", key))
            for key in ("minimumTlsVersion", "allowBlobPublicAccess", "allowSharedKeyAccess")
        }
        for template in deployment.templates
        for resource_type, declaration in template.resources()
        if resource_type == "Microsoft.Storage/storageAccounts"
    ]
    assert accounts == [
        {
            "minimumTlsVersion": "'TLS1_2'",
            "allowBlobPublicAccess": "false",
            "allowSharedKeyAccess": "false",
        }
    ]


# Built-in role definition ids, from
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
BUILT_IN_ROLES = {
    "acrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "logAnalyticsReader": "73c42c96-874c-492b-b04d-ab87d138a893",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
}


def test_role_variables_hold_the_built_in_role_ids_they_are_named_for(
    deployment: Deployment,
) -> None:
    role_variables = {}
    for template in deployment.templates:
        for node in template.declarations():
            name = declared_name(node)
            if node.type == "variable_declaration" and name is not None:
                value = string_value(named_children(node)[-1])
                if value is not None and len(value) == 36 and value.count("-") == 4:
                    role_variables[text(name)] = value
    assert role_variables == BUILT_IN_ROLES


def _source(node: tree_sitter.Node | None) -> str | None:
    return text(node) if node is not None else None


def _path(node: tree_sitter.Node | None, *keys: str) -> tree_sitter.Node | None:
    """Follow object keys from a resource declaration (its body) or an object."""
    current = node
    if current is not None and current.type == "resource_declaration":
        current = declaration_body(current)
    for key in keys:
        if current is None:
            return None
        current = property_value(current, key)
    return current


# -- the comparison rules, on invented inputs ---------------------------------------------------


def test_identity_host_storage_settings_satisfy_plain_azure_webjobs_storage() -> None:
    assert missing_settings(["AzureWebJobsStorage"], ["AzureWebJobsStorage__blobServiceUri"]) == []


def test_plain_azure_webjobs_storage_satisfies_itself() -> None:
    assert missing_settings(["AzureWebJobsStorage"], ["AzureWebJobsStorage"]) == []


def test_identity_setting_the_code_lists_must_be_set_itself() -> None:
    assert missing_settings(
        ["AzureWebJobsStorage__clientId"], ["AzureWebJobsStorage__blobServiceUri"]
    ) == ["AzureWebJobsStorage__clientId"]


def test_settings_the_template_does_not_set_are_reported_sorted() -> None:
    assert missing_settings(["B", "A", "C"], ["C"]) == ["A", "B"]


def subscription(**changes: object) -> EventSubscription:
    fields: dict[str, object] = {
        "endpoint_type": "AzureFunction",
        "app_resource_type": "Microsoft.Web/sites",
        "function_name": "on_registry_event",
        "event_types": ("push", "delete"),
        "has_dead_letter": True,
        "has_retry_policy": True,
    }
    fields.update(changes)
    return EventSubscription(**fields)  # type: ignore[arg-type]


def test_subscription_to_a_registered_event_grid_function_is_accepted() -> None:
    functions = {"on_registry_event": "eventGridTrigger"}
    assert subscription_problems([subscription()], functions, ["delete", "push"]) == []


def test_subscription_to_an_unregistered_function_is_reported() -> None:
    assert subscription_problems(
        [subscription()], {"images": "httpTrigger"}, ["push", "delete"]
    ) == ["function 'on_registry_event' is not registered in function_app.py (has ['images'])"]


def test_subscription_to_a_function_with_another_trigger_is_reported() -> None:
    functions = {"on_registry_event": "httpTrigger"}
    assert subscription_problems([subscription()], functions, ["push", "delete"]) == [
        "function 'on_registry_event' has trigger 'httpTrigger', not eventGridTrigger"
    ]


def test_subscription_with_other_event_types_than_the_code_is_reported() -> None:
    functions = {"on_registry_event": "eventGridTrigger"}
    assert subscription_problems(
        [subscription(event_types=("push",))], functions, ["push", "delete"]
    ) == ["event types ['push'] differ from the code's ['delete', 'push']"]


def test_subscription_without_retry_or_dead_letter_is_reported() -> None:
    functions = {"on_registry_event": "eventGridTrigger"}
    changed = subscription(has_dead_letter=False, has_retry_policy=False)
    assert subscription_problems([changed], functions, ["push", "delete"]) == [
        "no retry policy",
        "no dead-letter destination",
    ]


def test_no_subscription_at_all_is_reported() -> None:
    assert subscription_problems([], {}, ["push"]) == [
        "the templates declare no Event Grid subscription"
    ]


# -- reading values across files, on invented templates ----------------------------------------


def test_values_are_followed_through_variables_parameters_and_module_outputs(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.bicep").write_text(
        """param settings object
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app'
  resource config 'config' = {
    name: 'appsettings'
    properties: union(settings, { FIXED: 'x' })
  }
}
output id string = site.id
"""
    )
    (tmp_path / "events.bicep").write_text(
        """param appId string
var functionName = 'on_push'
var types = [
  'push'
]
resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: 'topic'
}
resource sub 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'sub'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${appId}/functions/${functionName}'
      }
    }
    filter: {
      includedEventTypes: types
    }
  }
}
"""
    )
    (tmp_path / "main.bicep").write_text(
        """module app 'app.bicep' = {
  name: 'app'
  params: {
    settings: { FROM_MAIN: 'y' }
  }
}
module events 'events.bicep' = {
  name: 'events'
  params: {
    appId: app.outputs.id
  }
}
"""
    )
    deployment = Deployment.load(tmp_path / "main.bicep")
    assert (sorted(deployment.app_settings()), deployment.event_subscriptions()) == (
        ["FIXED", "FROM_MAIN"],
        [
            EventSubscription(
                endpoint_type="AzureFunction",
                app_resource_type="Microsoft.Web/sites",
                function_name="on_push",
                event_types=("push",),
                has_dead_letter=False,
                has_retry_policy=False,
            )
        ],
    )
