"""What the Bicep templates wire up, read from their parse trees, and how that must match the app.

Reading follows values across files the way a deployment would: a variable to its value, a
module parameter to the argument its (single) caller passes, ``mod.outputs.x`` to the output's
expression in the module file. The comparisons with the app (``missing_settings``,
``subscription_problems``) are pure functions so their rules are tested on invented inputs too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import tree_sitter
from bicepcheck import (
    declaration_body,
    declared_name,
    named_children,
    nested_resources,
    object_properties,
    parse,
    property_value,
    string_value,
    text,
)

# The host storage connection: locally a connection string, in Azure identity-based settings
# named AzureWebJobsStorage__<property> (functions-reference, "Connecting to host storage with an
# identity"). Either form satisfies a plain AzureWebJobsStorage the code lists.
HOST_STORAGE = "AzureWebJobsStorage"
# Flex Consumption sets the runtime in functionAppConfig and rejects these as app settings.
FLEX_FORBIDDEN_SETTINGS = frozenset({"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"})


@dataclass(frozen=True, slots=True)
class Template:
    path: Path
    tree: tree_sitter.Tree

    def declarations(self) -> list[tree_sitter.Node]:
        return named_children(self.tree.root_node)

    def find(self, kind: str, name: str) -> tree_sitter.Node | None:
        for node in self.declarations():
            declared = declared_name(node)
            if node.type == kind and declared is not None and text(declared) == name:
                return node
        return None

    def resources(self) -> Iterator[tuple[str, tree_sitter.Node]]:
        """(full type without API version, declaration) for every resource, nested ones too."""
        for node in self.declarations():
            if node.type == "resource_declaration":
                yield from _resource_tree(node, "")


def _resource_tree(
    node: tree_sitter.Node, parent_type: str
) -> Iterator[tuple[str, tree_sitter.Node]]:
    parts = named_children(node)
    declared_type = (string_value(parts[1]) or "") if len(parts) > 1 else ""
    resource_type = declared_type.split("@", 1)[0]
    if parent_type and "/" not in resource_type:
        resource_type = f"{parent_type}/{resource_type}"
    yield resource_type, node
    for child in nested_resources(node):
        yield from _resource_tree(child, resource_type)


@dataclass(frozen=True, slots=True)
class ModuleCall:
    caller: Template
    declaration: tree_sitter.Node
    target: Template


@dataclass(frozen=True, slots=True)
class Deployment:
    """A main template and every local module it reaches."""

    templates: tuple[Template, ...]
    calls: tuple[ModuleCall, ...]

    @classmethod
    def load(cls, main: Path) -> Deployment:
        templates: dict[Path, Template] = {}
        pending = [main.resolve()]
        while pending:
            path = pending.pop()
            if path not in templates:
                templates[path] = Template(path, parse(path.read_bytes()))
                pending.extend(target for _, target in _local_modules(templates[path]))
        calls = tuple(
            ModuleCall(template, declaration, templates[target])
            for template in templates.values()
            for declaration, target in _local_modules(template)
        )
        return cls(tuple(templates.values()), calls)

    # -- following values -------------------------------------------------------------------

    def resolve(
        self, node: tree_sitter.Node, template: Template
    ) -> tuple[tree_sitter.Node, Template]:
        """Follow variables, module parameters and module outputs to the expression behind them."""
        for _ in range(32):  # templates are acyclic; the bound only guards against a bad one
            if node.type == "parenthesized_expression" and len(named_children(node)) == 1:
                node = named_children(node)[0]
                continue
            if node.type == "identifier":
                variable = template.find("variable_declaration", text(node))
                if variable is not None:
                    node = named_children(variable)[-1]
                    continue
                if template.find("parameter_declaration", text(node)) is not None:
                    argument = self.argument(template, text(node))
                    if argument is None:
                        return node, template
                    node, template = argument
                    continue
                return node, template
            output = self.module_output(node, template)
            if output is None:
                return node, template
            node, template = output
        return node, template

    def argument(
        self, template: Template, parameter: str
    ) -> tuple[tree_sitter.Node, Template] | None:
        """The value the only caller of ``template`` passes for ``parameter``."""
        callers = [call for call in self.calls if call.target.path == template.path]
        if len(callers) != 1:
            return None
        body = declaration_body(callers[0].declaration)
        params = property_value(body, "params") if body is not None else None
        value = (
            property_value(params, parameter)
            if params is not None and params.type == "object"
            else None
        )
        return (value, callers[0].caller) if value is not None else None

    def module_output(
        self, node: tree_sitter.Node, template: Template
    ) -> tuple[tree_sitter.Node, Template] | None:
        """``mod.outputs.name`` -> the output's expression in mod's file."""
        if node.type != "member_expression":
            return None
        prop = node.child_by_field_name("property")
        outputs = node.child_by_field_name("object")
        if prop is None or outputs is None or outputs.type != "member_expression":
            return None
        outputs_prop = outputs.child_by_field_name("property")
        module = outputs.child_by_field_name("object")
        if outputs_prop is None or text(outputs_prop) != "outputs" or module is None:
            return None
        for call in self.calls:
            call_name = declared_name(call.declaration)
            if (
                call.caller.path == template.path
                and call_name is not None
                and text(call_name) == text(module)
            ):
                output = call.target.find("output_declaration", text(prop))
                if output is not None:
                    return named_children(output)[-1], call.target
        return None

    def resource_type_of_id(self, node: tree_sitter.Node, template: Template) -> str | None:
        """For an expression ``<resource>.id`` (after resolving), the resource's type."""
        node, template = self.resolve(node, template)
        if node.type != "member_expression":
            return None
        prop = node.child_by_field_name("property")
        resource = node.child_by_field_name("object")
        if prop is None or text(prop) != "id" or resource is None or resource.type != "identifier":
            return None
        for resource_type, declaration in template.resources():
            declared = declared_name(declaration)
            if declared is not None and text(declared) == text(resource):
                return resource_type
        return None

    def string_list(self, node: tree_sitter.Node, template: Template) -> tuple[str, ...] | None:
        node, template = self.resolve(node, template)
        if node.type != "array":
            return None
        values = []
        for item in named_children(node):
            value = string_value(self.resolve(item, template)[0])
            if value is None:
                return None
            values.append(value)
        return tuple(values)

    def object_keys(
        self, node: tree_sitter.Node, template: Template
    ) -> Iterator[tuple[str, tree_sitter.Node, Template]]:
        """Keys of an object expression, through ``union(...)`` and the resolution above."""
        node, template = self.resolve(node, template)
        if node.type == "object":
            for key, value in object_properties(node):
                yield key, value, template
        elif node.type == "call_expression":
            function = node.child_by_field_name("function")
            arguments = node.child_by_field_name("arguments")
            if function is not None and text(function) == "union" and arguments is not None:
                for argument in named_children(arguments):
                    yield from self.object_keys(argument, template)

    # -- what the deployment wires ----------------------------------------------------------

    def app_settings(self) -> dict[str, tuple[tree_sitter.Node, Template]]:
        """Function app settings: ``sites/config`` named appsettings, and siteConfig.appSettings."""
        settings: dict[str, tuple[tree_sitter.Node, Template]] = {}
        for template in self.templates:
            for resource_type, declaration in template.resources():
                body = declaration_body(declaration)
                if body is None:
                    continue
                if resource_type == "Microsoft.Web/sites/config":
                    name = property_value(body, "name")
                    properties = property_value(body, "properties")
                    if (
                        name is not None
                        and string_value(name) == "appsettings"
                        and properties is not None
                    ):
                        for key, value, where in self.object_keys(properties, template):
                            settings[key] = (value, where)
                elif resource_type == "Microsoft.Web/sites":
                    settings.update(self._site_config_settings(body, template))
        return settings

    def _site_config_settings(
        self, body: tree_sitter.Node, template: Template
    ) -> dict[str, tuple[tree_sitter.Node, Template]]:
        properties = property_value(body, "properties")
        site_config = property_value(properties, "siteConfig") if properties is not None else None
        listed = property_value(site_config, "appSettings") if site_config is not None else None
        found: dict[str, tuple[tree_sitter.Node, Template]] = {}
        if listed is None or listed.type != "array":
            return found
        for item in named_children(listed):
            if item.type != "object":
                continue
            name = property_value(item, "name")
            value = property_value(item, "value")
            key = string_value(name) if name is not None else None
            if key is not None and value is not None:
                found[key] = (value, template)
        return found

    def event_subscriptions(self) -> list[EventSubscription]:
        found = []
        for template in self.templates:
            for resource_type, declaration in template.resources():
                if not resource_type.endswith(
                    "/eventSubscriptions"
                ) or not resource_type.startswith("Microsoft.EventGrid/"):
                    continue
                body = declaration_body(declaration)
                properties = property_value(body, "properties") if body is not None else None
                if properties is None:
                    continue
                found.append(self._subscription(properties, template))
        return found

    def _subscription(self, properties: tree_sitter.Node, template: Template) -> EventSubscription:
        destination = property_value(properties, "destination")
        endpoint_type = (
            property_value(destination, "endpointType") if destination is not None else None
        )
        target = property_value(destination, "properties") if destination is not None else None
        resource_id = property_value(target, "resourceId") if target is not None else None
        app_type, function_name = (None, None)
        if resource_id is not None:
            app_type, function_name = self._function_target(resource_id, template)
        subscription_filter = property_value(properties, "filter")
        included = (
            property_value(subscription_filter, "includedEventTypes")
            if subscription_filter is not None
            else None
        )
        return EventSubscription(
            endpoint_type=string_value(endpoint_type) if endpoint_type is not None else None,
            app_resource_type=app_type,
            function_name=function_name,
            event_types=self.string_list(included, template) if included is not None else None,
            has_dead_letter=property_value(properties, "deadLetterWithResourceIdentity") is not None
            or property_value(properties, "deadLetterDestination") is not None,
            has_retry_policy=property_value(properties, "retryPolicy") is not None,
        )

    def _function_target(
        self, resource_id: tree_sitter.Node, template: Template
    ) -> tuple[str | None, str | None]:
        """``'${<app>.id}/functions/<name>'``: the app's resource type and the function name."""
        resource_id, template = self.resolve(resource_id, template)
        if resource_id.type != "string":
            return None, None
        parts = [
            child
            for child in resource_id.children
            if child.type in ("interpolation", "string_content")
        ]
        if len(parts) < 2 or parts[0].type != "interpolation" or parts[1].type != "string_content":
            return None, None
        if not text(parts[1]).startswith("/functions/"):
            return None, None
        app_type = self.resource_type_of_id(named_children(parts[0])[0], template)
        rest = [text(parts[1])[len("/functions/") :]]
        for part in parts[2:]:
            if part.type == "string_content":
                rest.append(text(part))
                continue
            value = string_value(self.resolve(named_children(part)[0], template)[0])
            if value is None:
                return app_type, None
            rest.append(value)
        return app_type, "".join(rest)


def _local_modules(template: Template) -> Iterator[tuple[tree_sitter.Node, Path]]:
    """Module declarations with a local file path, and that path (relative to the caller)."""
    for node in template.declarations():
        parts = named_children(node)
        if node.type != "module_declaration" or len(parts) < 2:
            continue
        source = string_value(parts[1])
        # Registry (br:) and template spec (ts:) modules are not files here.
        if source is not None and ":" not in source:
            yield node, (template.path.parent / source).resolve()


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSubscription:
    endpoint_type: str | None
    app_resource_type: str | None
    function_name: str | None
    event_types: tuple[str, ...] | None
    has_dead_letter: bool
    has_retry_policy: bool


# -- comparisons with the app ---------------------------------------------------------------


def missing_settings(code_settings: Iterable[str], template_settings: Iterable[str]) -> list[str]:
    """Settings the code reads that the template does not set.

    A plain ``AzureWebJobsStorage`` counts as set when the template sets it or any identity-based
    ``AzureWebJobsStorage__*`` setting (the two are alternatives, never both).
    """
    set_names = set(template_settings)
    identity_host_storage = any(name.startswith(f"{HOST_STORAGE}__") for name in set_names)
    missing = []
    for name in code_settings:
        if name in set_names:
            continue
        if name == HOST_STORAGE and identity_host_storage:
            continue
        missing.append(name)
    return sorted(missing)


def secret_storage_problems(settings: Mapping[str, str]) -> list[str]:
    """Settings (name -> value source text) that would put a storage account key in the app."""
    problems = []
    for name, value in settings.items():
        if "AccountKey=" in value or "listKeys(" in value:
            problems.append(f"{name} carries a storage account key")
    return sorted(problems)


def subscription_problems(
    subscriptions: Iterable[EventSubscription],
    functions: Mapping[str, str],
    event_types: Iterable[str],
) -> list[str]:
    """Why the subscriptions do not deliver the app's event types to an Event Grid function.

    ``functions`` maps each function name of the app to its trigger type.
    """
    subscriptions = list(subscriptions)
    if not subscriptions:
        return ["the templates declare no Event Grid subscription"]
    problems = []
    expected = sorted(event_types)
    for subscription in subscriptions:
        name = subscription.function_name
        if subscription.endpoint_type != "AzureFunction":
            problems.append(f"endpoint type is {subscription.endpoint_type!r}, not 'AzureFunction'")
        if subscription.app_resource_type != "Microsoft.Web/sites":
            problems.append(
                "destination is not a function of a Microsoft.Web/sites resource"
                f" ({subscription.app_resource_type!r})"
            )
        if name is None:
            problems.append("destination function name could not be read")
        elif name not in functions:
            problems.append(
                f"function {name!r} is not registered in function_app.py (has {sorted(functions)})"
            )
        elif functions[name] != "eventGridTrigger":
            problems.append(
                f"function {name!r} has trigger {functions[name]!r}, not eventGridTrigger"
            )
        if subscription.event_types is None:
            problems.append("included event types could not be read")
        elif sorted(subscription.event_types) != expected:
            problems.append(
                f"event types {sorted(subscription.event_types)} differ from the code's {expected}"
            )
        if not subscription.has_retry_policy:
            problems.append("no retry policy")
        if not subscription.has_dead_letter:
            problems.append("no dead-letter destination")
    return problems
