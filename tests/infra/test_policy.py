"""Subscription-wide and management-group-wide onboarding wire each registry as main.bicep
wires one, and as the app expects: the policy's deployment template (modules/registry-wiring.bicep,
used at both scopes) delivers the code's event types to the function function_app.py registers,
grants the same roles and sends the log categories the pull sync reads; the policy's identity
gets the roles its deployments run with; the app lists the registries of the subscription, or of
the subscriptions given for the management group."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from bicepcheck import (
    declaration_body,
    named_children,
    property_value,
    string_value,
    text,
    walk,
)
from test_wiring import BUILT_IN_ROLES
from wiring import Deployment, Template, missing_settings

from scanning.config import SETTINGS
from scanning.events import EVENT_TYPES
from scanning.local.host import index_app
from scanning.pulls import PULL_QUERY

INFRA = Path(__file__).resolve().parents[2] / "infra"


# The templates that onboard every registry of a scope, with the module that assigns the policy.
FLEET_TEMPLATES = {"subscription.bicep": "registry-policy.bicep",
                   "managementgroup.bicep": "managementgroup.bicep"}


@pytest.fixture(scope="module", params=sorted(FLEET_TEMPLATES))
def fleet(request: pytest.FixtureRequest) -> Deployment:
    return Deployment.load(INFRA / request.param)


@pytest.fixture(scope="module")
def subscription_wide() -> Deployment:
    return Deployment.load(INFRA / "subscription.bicep")


@pytest.fixture(scope="module")
def group_wide() -> Deployment:
    return Deployment.load(INFRA / "managementgroup.bicep")


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
        fleet: Deployment) -> None:
    policy = template(fleet, "registry-wiring.bicep")
    function = values(fleet, policy, "eventFunctionName")
    assert (function, app_functions().get(function[0]),
            sorted(values(fleet, policy, "eventTypes"))) == (
        ["on_registry_event"], "eventGridTrigger", sorted(EVENT_TYPES))


def test_policy_and_one_registry_wiring_agree(fleet: Deployment,
                                              one_registry: Deployment) -> None:
    policy = template(fleet, "registry-wiring.bicep")
    registry = template(one_registry, "registry.bicep")
    assert {name: values(fleet, policy, name)
            for name in ("eventFunctionName", "eventTypes", "registryRoles")} == {
        name: values(one_registry, registry, name)
        for name in ("eventFunctionName", "eventTypes", "registryRoles")}


def test_policy_sends_the_log_categories_of_one_registry_and_of_the_pull_sync(
        fleet: Deployment, one_registry: Deployment) -> None:
    policy = template(fleet, "registry-wiring.bicep")
    categories = values(fleet, policy, "logCategories")
    # The pull sync queries the table the category fills (the query's first line).
    assert (categories, PULL_QUERY.split("\n", 1)[0] in categories) == (
        log_categories(template(one_registry, "registry.bicep")), True)


def test_subscription_app_sets_every_setting_and_lists_its_subscription(
        subscription_wide: Deployment) -> None:
    settings = subscription_wide.app_settings()
    node, _ = subscription_wide.resolve(*settings["SUBSCRIPTION_IDS"])
    assert (missing_settings(SETTINGS, settings), text(node)) == (
        [], "empty(catchupSubscriptionIds) ? subscription().subscriptionId : "
            "catchupSubscriptionIds")


def test_group_app_sets_every_setting_and_lists_the_subscriptions_given(
        group_wide: Deployment) -> None:
    settings = group_wide.app_settings()
    condition, where = group_wide.resolve(*settings["SUBSCRIPTION_IDS"])
    # The subscription template's fallback is not taken: the group passes its list.
    given, owner = group_wide.resolve(named_children(condition)[-1], where)
    assert (missing_settings(SETTINGS, settings), owner.path.name, text(given)) == (
        [], "managementgroup.bicep", "catchupSubscriptionIds")


def test_group_deploys_the_app_without_the_subscription_policy(group_wide: Deployment) -> None:
    call = next(call for call in group_wide.calls if call.target.path.name == "subscription.bicep")
    body = declaration_body(call.declaration)
    assert body is not None
    params = property_value(body, "params")
    assert params is not None
    scope = property_value(body, "scope")
    assert (text(property_value(params, "onboardRegistries")),
            text(scope) if scope is not None else None) == (
        "false", "subscription(appSubscriptionId)")


def assigned_deployer_roles(deployment: Deployment, owner: Template) -> list[str]:
    """The role ids the policy's identity is granted (the ``for roleId in <list>`` of the role
    assignment that names ``assignment.identity.principalId``)."""
    for _, node in owner.resources():
        if "assignment.identity.principalId" not in text(node):
            continue
        loop = next(item for item in walk(node) if item.type == "for_statement")
        iterable = next(item for item in named_children(loop) if item.type == "identifier"
                        and item != loop.child_by_field_name("initializer"))
        return values(deployment, owner, text(iterable))
    raise AssertionError(f"{owner.path.name} grants the policy's identity no role")


def test_policy_identity_gets_the_roles_its_definition_deploys_with(fleet: Deployment) -> None:
    # The deployment's first template is the one it was loaded from.
    owner = template(fleet, FLEET_TEMPLATES[fleet.templates[0].path.name])
    call = next(call for call in fleet.calls if call.caller.path == owner.path
                and call.target.path.name == "registry-wiring.bicep")
    body = declaration_body(call.declaration)
    assert body is not None
    params = property_value(body, "params")
    assert params is not None
    passed = property_value(params, "deployerRoles")
    assert passed is not None
    assert (assigned_deployer_roles(fleet, owner), text(passed)) == (
        [POLICY_DEPLOYER_ROLES["contributor"], POLICY_DEPLOYER_ROLES["userAccessAdministrator"]],
        "deployerRoles")


# Built-in role definition ids, from
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
POLICY_DEPLOYER_ROLES = {
    "contributor": "b24988ac-6180-42a0-ab88-20f7382dd7c4",
    "userAccessAdministrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
}


def test_role_variables_hold_the_built_in_role_ids_they_are_named_for(
        fleet: Deployment) -> None:
    found = {}
    for owner in fleet.templates:
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
