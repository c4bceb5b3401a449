"""Subscription-wide onboarding wires each registry as main.bicep wires one, and as the app
expects: the policy's deployment template delivers the code's event types to the function
function_app.py registers, grants the same roles and sends the log categories the pull sync
reads; the app it deploys lists the subscription's registries."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from bicepcheck import named_children, string_value, text, walk
from test_wiring import BUILT_IN_ROLES
from wiring import Deployment, Template, missing_settings

from scanning.config import SETTINGS
from scanning.events import EVENT_TYPES
from scanning.local.host import index_app
from scanning.pulls import PULL_QUERY

INFRA = Path(__file__).resolve().parents[2] / "infra"


@pytest.fixture(scope="module")
def subscription_wide() -> Deployment:
    return Deployment.load(INFRA / "subscription.bicep")


@pytest.fixture(scope="module")
def one_registry() -> Deployment:
    return Deployment.load(INFRA / "main.bicep")


def template(deployment: Deployment, name: str) -> Template:
    return next(item for item in deployment.templates if item.path.name == name)


def values(deployment: Deployment, owner: Template, name: str) -> list[str]:
    """A variable's string value, or its array's, following variables and parameters."""
    variable = owner.find("variable_declaration", name)
    assert variable is not None, f"{owner.path.name} declares no variable {name}"
    node, where = deployment.resolve(named_children(variable)[-1], owner)
    items = named_children(node) if node.type == "array" else [node]
    found = []
    for item in items:
        resolved, _ = deployment.resolve(item, where)
        value = string_value(resolved)
        assert value is not None, f"{name}: {text(resolved)} is not a string"
        found.append(value)
    return found


def log_categories(owner: Template) -> list[str]:
    """Every ``category: '<name>'`` of a diagnostic setting written out in ``owner``."""
    return [value for node in walk(owner.tree.root_node) if node.type == "object_property"
            and text(named_children(node)[0]) == "category"
            and (value := string_value(named_children(node)[-1])) is not None]


def app_functions() -> dict[str, str]:
    """Function name -> trigger type (``index_app`` leaves the app as it was: calling
    ``get_functions`` twice fails its duplicate-name check)."""
    function_app = importlib.import_module("function_app")
    return {item.name: item.trigger_type for item in index_app(function_app.app).functions}


def test_policy_delivers_the_code_event_types_to_the_registered_event_function(
        subscription_wide: Deployment) -> None:
    policy = template(subscription_wide, "registry-policy.bicep")
    function = values(subscription_wide, policy, "eventFunctionName")
    assert (function, app_functions().get(function[0]),
            sorted(values(subscription_wide, policy, "eventTypes"))) == (
        ["on_registry_event"], "eventGridTrigger", sorted(EVENT_TYPES))


def test_policy_and_one_registry_wiring_agree(subscription_wide: Deployment,
                                              one_registry: Deployment) -> None:
    policy = template(subscription_wide, "registry-policy.bicep")
    registry = template(one_registry, "registry.bicep")
    assert {name: values(subscription_wide, policy, name)
            for name in ("eventFunctionName", "eventTypes", "registryRoles")} == {
        name: values(one_registry, registry, name)
        for name in ("eventFunctionName", "eventTypes", "registryRoles")}


def test_policy_sends_the_log_categories_of_one_registry_and_of_the_pull_sync(
        subscription_wide: Deployment, one_registry: Deployment) -> None:
    policy = template(subscription_wide, "registry-policy.bicep")
    categories = values(subscription_wide, policy, "logCategories")
    # The pull sync queries the table the category fills (the query's first line).
    assert (categories, PULL_QUERY.split("\n", 1)[0] in categories) == (
        log_categories(template(one_registry, "registry.bicep")), True)


def test_subscription_app_sets_every_setting_and_lists_its_subscription(
        subscription_wide: Deployment) -> None:
    settings = subscription_wide.app_settings()
    node, _ = subscription_wide.resolve(*settings["SUBSCRIPTION_IDS"])
    assert (missing_settings(SETTINGS, settings), text(node)) == (
        [], "subscription().subscriptionId")


# Built-in role definition ids, from
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
POLICY_DEPLOYER_ROLES = {
    "contributor": "b24988ac-6180-42a0-ab88-20f7382dd7c4",
    "userAccessAdministrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
}


def test_role_variables_hold_the_built_in_role_ids_they_are_named_for(
        subscription_wide: Deployment) -> None:
    found = {}
    for owner in subscription_wide.templates:
        for node in owner.declarations():
            parts = named_children(node)
            value = string_value(parts[-1]) if node.type == "variable_declaration" else None
            if value is not None and len(value) == 36 and value.count("-") == 4:
                found[text(parts[0])] = value
    assert found == {**POLICY_DEPLOYER_ROLES, "acrPull": BUILT_IN_ROLES["acrPull"],
                     "reader": BUILT_IN_ROLES["reader"],
                     "logAnalyticsReader": BUILT_IN_ROLES["logAnalyticsReader"],
                     "monitoringMetricsPublisher": BUILT_IN_ROLES["monitoringMetricsPublisher"],
                     "storageBlobDataContributor": BUILT_IN_ROLES["storageBlobDataContributor"],
                     "storageBlobDataOwner": BUILT_IN_ROLES["storageBlobDataOwner"],
                     "storageQueueDataContributor": BUILT_IN_ROLES["storageQueueDataContributor"],
                     "storageTableDataContributor": BUILT_IN_ROLES["storageTableDataContributor"]}
