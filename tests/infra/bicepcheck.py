"""A small static checker for Bicep files, for machines without the Bicep compiler.

It parses with the tree-sitter Bicep grammar (PyPI ``tree-sitter-bicep``) and reports:

- syntax errors: ``ERROR`` and ``MISSING`` nodes of the parse tree;
- references to names that are not declared: parameters, variables, resources, modules, types,
  user-defined functions and imports, with Bicep's scoping (file-level symbols are visible
  everywhere regardless of order; loop variables, lambda parameters and function parameters only
  in their bodies; nested resources inside their parent and through ``parent::child``);
- calls to functions that are neither declared nor Bicep built-ins (``az.``/``sys.`` namespaces
  and decorators included);
- for a module with a local path: the file exists, every key of its ``params`` object is a
  parameter of that file, every parameter without a default is passed, and each
  ``module.outputs.name`` is an output of that file.

Output names are not symbols: Bicep does not let a file reference its own outputs.
The rules follow https://learn.microsoft.com/azure/azure-resource-manager/bicep/file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import tree_sitter
import tree_sitter_bicep

LANGUAGE = tree_sitter.Language(tree_sitter_bicep.language())

# https://learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions
BUILTIN_FUNCTIONS = frozenset(
    {
        # any, array, object, logical, numeric
        "any", "array", "bool", "concat", "contains", "empty", "first", "flatten", "indexOf",
        "intersection", "items", "int", "json", "join", "last", "lastIndexOf", "length", "max",
        "min", "objectKeys", "range", "shallowMerge", "skip", "take", "tryGet", "union",
        # date
        "dateTimeAdd", "dateTimeFromEpoch", "dateTimeToEpoch", "utcNow",
        # deployment
        "deployer", "deployment", "environment",
        # files
        "loadDirectoryFileInfo", "loadFileAsBase64", "loadJsonContent", "loadTextContent",
        "loadYamlContent",
        # lambdas
        "filter", "groupBy", "map", "mapValue", "reduce", "sort", "toObject",
        # parameters files
        "externalInput", "getSecret", "readEnvironmentVariable",
        # resources and scopes
        "extensionResourceId", "managementGroup", "managementGroupResourceId", "nameof",
        "pickZones", "providers", "reference", "resourceGroup", "resourceId", "subscription",
        "subscriptionResourceId", "tenant", "tenantResourceId",
        # strings
        "base64", "base64ToJson", "base64ToString", "dataUri", "dataUriToString", "endsWith",
        "format", "guid", "newGuid", "padLeft", "replace", "split", "startsWith", "string",
        "substring", "toLower", "toUpper", "trim", "uniqueString", "uri", "uriComponent",
        "uriComponentToString",
        # networking
        "cidrHost", "cidrSubnet", "parseCidr",
    }
)  # fmt: skip

# list*() (listKeys, listSecrets, ...) are resource functions with open-ended names.
LIST_FUNCTION = re.compile(r"^list[A-Z0-9]\w*$|^list$")

# https://learn.microsoft.com/azure/azure-resource-manager/bicep/parameters#use-decorators
DECORATORS = frozenset(
    {
        "allowed", "batchSize", "description", "discriminator", "export", "maxLength",
        "maxValue", "metadata", "minLength", "minValue", "onlyIfNotExists", "sealed", "secure",
    }
)  # fmt: skip

NAMESPACES = frozenset({"az", "sys"})

# Declarations whose first identifier child is the declared name, not a reference.
_NAMED_DECLARATIONS = frozenset(
    {
        "parameter_declaration", "variable_declaration", "resource_declaration",
        "module_declaration", "output_declaration", "type_declaration", "metadata_declaration",
        "assert_statement", "test_block",
    }
)  # fmt: skip


class SymbolKind(Enum):
    PARAMETER = "parameter"
    VARIABLE = "variable"
    RESOURCE = "resource"
    MODULE = "module"
    TYPE = "type"
    FUNCTION = "function"
    IMPORT = "import"
    LOCAL = "local"  # loop variable, lambda or function parameter


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleInterface:
    """What a Bicep file offers to a caller: its parameters and outputs."""

    required_parameters: frozenset[str]
    parameters: frozenset[str]
    outputs: frozenset[str]


def parse(source: bytes) -> tree_sitter.Tree:
    return tree_sitter.Parser(LANGUAGE).parse(source)


def text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


def _problem(path: str, node: tree_sitter.Node, message: str) -> Problem:
    row, column = node.start_point
    return Problem(path=path, line=row + 1, column=column + 1, message=message)


def syntax_errors(tree: tree_sitter.Tree, path: str = "<source>") -> list[Problem]:
    problems: list[Problem] = []
    for node in walk(tree.root_node):
        if node.is_missing:
            problems.append(_problem(path, node, f"syntax error: missing {node.type}"))
        elif node.is_error:
            snippet = text(node)[:40].replace("\n", " ")
            problems.append(_problem(path, node, f"syntax error near {snippet!r}"))
    return problems


def walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def named_children(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    return [child for child in node.children if child.is_named and child.type != "comment"]


def declared_name(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The identifier a declaration introduces (None if the parse lost it)."""
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    for child in node.children:
        if child.type == "identifier":
            return child
    return None


def string_value(node: tree_sitter.Node | None) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node is None or node.type != "string":
        return None
    if any(child.type == "interpolation" for child in node.children):
        return None
    return "".join(text(child) for child in node.children if child.type == "string_content")


def object_properties(node: tree_sitter.Node) -> Iterator[tuple[str, tree_sitter.Node]]:
    """(key, value) for the literal keys of an object node."""
    for prop in named_children(node):
        if prop.type != "object_property":
            continue
        parts = named_children(prop)
        if len(parts) < 2:
            continue
        key_node, value = parts[0], parts[-1]
        key = text(key_node) if key_node.type == "identifier" else string_value(key_node)
        if key is not None:
            yield key, value


def property_value(node: tree_sitter.Node, key: str) -> tree_sitter.Node | None:
    for name, value in object_properties(node):
        if name == key:
            return value
    return None


def declaration_body(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The object of a resource or module declaration, under any ``for``/``if`` wrappers."""
    body = named_children(node)[-1] if named_children(node) else None
    while body is not None and body.type in ("for_statement", "if_statement"):
        if body.type == "for_statement":
            body = body.child_by_field_name("body") or named_children(body)[-1]
        else:
            body = named_children(body)[-1]
    return body if body is not None and body.type == "object" else None


def nested_resources(resource: tree_sitter.Node) -> list[tree_sitter.Node]:
    body = declaration_body(resource)
    if body is None:
        return []
    return [
        child
        for prop in named_children(body)
        if prop.type == "object_property"
        for child in named_children(prop)
        if child.type == "resource_declaration"
    ]


def module_interface(tree: tree_sitter.Tree) -> ModuleInterface:
    parameters: set[str] = set()
    required: set[str] = set()
    outputs: set[str] = set()
    for node in named_children(tree.root_node):
        name = declared_name(node)
        if name is None:
            continue
        if node.type == "parameter_declaration":
            parameters.add(text(name))
            parts = named_children(node)
            type_node = parts[1] if len(parts) > 1 else None
            nullable = type_node is not None and any(
                child.type == "nullable_type" for child in walk(type_node)
            )
            # name, type and a default value: three named children.
            if len(parts) < 3 and not nullable:
                required.add(text(name))
        elif node.type == "output_declaration":
            outputs.add(text(name))
    return ModuleInterface(
        required_parameters=frozenset(required),
        parameters=frozenset(parameters),
        outputs=frozenset(outputs),
    )


class _Checker:
    def __init__(self, tree: tree_sitter.Tree, path: Path | None, label: str) -> None:
        self.tree = tree
        self.path = path
        self.label = label
        self.problems: list[Problem] = []
        self.symbols: dict[str, SymbolKind] = {}
        self.children_of: dict[str, frozenset[str]] = {}
        self.module_interfaces: dict[str, ModuleInterface | None] = {}
        self.used: set[str] = set()

    def report(self, node: tree_sitter.Node, message: str) -> None:
        self.problems.append(_problem(self.label, node, message))

    # -- declarations -----------------------------------------------------------------------

    def collect(self) -> None:
        kinds = {
            "parameter_declaration": SymbolKind.PARAMETER,
            "variable_declaration": SymbolKind.VARIABLE,
            "resource_declaration": SymbolKind.RESOURCE,
            "module_declaration": SymbolKind.MODULE,
            "type_declaration": SymbolKind.TYPE,
            "user_defined_function": SymbolKind.FUNCTION,
        }
        for node in named_children(self.tree.root_node):
            if node.type == "import_functionality":
                for child in named_children(node):
                    if child.type == "identifier":
                        self.declare(child, SymbolKind.IMPORT)
            elif node.type in kinds:
                name = declared_name(node)
                if name is None:
                    continue
                self.declare(name, kinds[node.type])
                if node.type == "resource_declaration":
                    self.children_of[text(name)] = frozenset(
                        text(child_name)
                        for child in nested_resources(node)
                        if (child_name := declared_name(child)) is not None
                    )
                elif node.type == "module_declaration":
                    self.module_interfaces[text(name)] = self.load_module(node)

    def declare(self, name: tree_sitter.Node, kind: SymbolKind) -> None:
        if text(name) in self.symbols:
            self.report(name, f"{text(name)!r} is declared more than once")
        self.symbols[text(name)] = kind

    def load_module(self, node: tree_sitter.Node) -> ModuleInterface | None:
        parts = named_children(node)
        source = string_value(parts[1]) if len(parts) > 1 else None
        # Registry (br:, br/) and template spec (ts:) modules cannot be read offline.
        if source is None or self.path is None or ":" in source or not source.endswith(".bicep"):
            return None
        module_path = (self.path.parent / source).resolve()
        if not module_path.is_file():
            self.report(parts[1], f"module file {source!r} not found")
            return None
        return module_interface(parse(module_path.read_bytes()))

    # -- references -------------------------------------------------------------------------

    def check(self) -> list[Problem]:
        self.collect()
        top: Mapping[str, SymbolKind] = self.symbols
        for node in named_children(self.tree.root_node):
            if node.type == "import_functionality":
                continue
            self.visit(node, top)
        return self.problems

    def visit(self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]) -> None:
        handler = getattr(self, f"visit_{node.type}", None)
        if handler is not None:
            handler(node, scope)
            return
        if node.type in _NAMED_DECLARATIONS:
            name = declared_name(node)
            for child in named_children(node):
                if child != name:
                    self.visit(child, scope)
            return
        for child in named_children(node):
            self.visit(child, scope)

    def visit_identifier(self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]) -> None:
        name = text(node)
        if name not in scope:
            self.report(node, f"{name!r} is not declared")
        elif scope[name] is not SymbolKind.LOCAL:
            self.used.add(name)

    def unused(self) -> list[Problem]:
        """Parameters, variables and functions nothing refers to (Bicep's linter warns too)."""
        kinds = {"parameter_declaration", "variable_declaration", "user_defined_function"}
        problems = []
        for node in named_children(self.tree.root_node):
            name = declared_name(node)
            if node.type in kinds and name is not None and text(name) not in self.used:
                kind = node.type.split("_")[0] if node.type != "user_defined_function" else "func"
                problems.append(
                    _problem(self.label, name, f"{kind} {text(name)!r} is declared but never used")
                )
        return problems

    def visit_type(self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]) -> None:
        for child in walk(node):
            if child.type == "identifier" and scope.get(text(child)) not in (
                SymbolKind.TYPE,
                SymbolKind.IMPORT,
            ):
                self.report(child, f"type {text(child)!r} is not declared")

    def visit_type_declaration(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        name = declared_name(node)
        for child in named_children(node):
            if child == name:
                continue
            # A type body: object keys are property names, other identifiers name types.
            for inner in walk(child):
                if inner.type != "identifier":
                    continue
                parent = inner.parent
                is_key = (
                    parent is not None
                    and parent.type == "object_property"
                    and named_children(parent)[0] == inner
                )
                if not is_key and scope.get(text(inner)) not in (
                    SymbolKind.TYPE,
                    SymbolKind.IMPORT,
                ):
                    self.report(inner, f"type {text(inner)!r} is not declared")

    def visit_decorator(self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]) -> None:
        for call in named_children(node):
            if call.type != "call_expression":
                self.visit(call, scope)
                continue
            function = call.child_by_field_name("function")
            if function is not None and function.type == "identifier":
                if text(function) not in DECORATORS and text(function) not in scope:
                    self.report(function, f"unknown decorator @{text(function)}")
            elif function is not None:
                self.visit(function, scope)
            arguments = call.child_by_field_name("arguments")
            if arguments is not None:
                self.visit(arguments, scope)

    def visit_call_expression(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        function = node.child_by_field_name("function")
        if function is not None and function.type == "identifier":
            name = text(function)
            known = name in scope or name in BUILTIN_FUNCTIONS or LIST_FUNCTION.match(name)
            if not known:
                self.report(function, f"function {name}() is neither declared nor built in")
            elif name in scope:
                self.used.add(name)
        elif function is not None:
            self.visit(function, scope)
        for child in named_children(node):
            if child != function:
                self.visit(child, scope)

    def visit_member_expression(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        target = node.child_by_field_name("object")
        prop = node.child_by_field_name("property")
        if target is None:
            return
        if target.type == "identifier" and text(target) in NAMESPACES and text(target) not in scope:
            return
        self.check_module_output(target, prop)
        self.visit(target, scope)

    def check_module_output(self, target: tree_sitter.Node, prop: tree_sitter.Node | None) -> None:
        """``mod.outputs.name`` (or ``mod[i].outputs.name``) names an output of mod's file."""
        if prop is None or target.type != "member_expression":
            return
        outputs_prop = target.child_by_field_name("property")
        module = target.child_by_field_name("object")
        if outputs_prop is None or text(outputs_prop) != "outputs" or module is None:
            return
        while module is not None and module.type == "subscript_expression":
            module = module.child_by_field_name("object")
        if module is None or module.type != "identifier":
            return
        interface = self.module_interfaces.get(text(module))
        if interface is not None and text(prop) not in interface.outputs:
            self.report(prop, f"module {text(module)!r} has no output {text(prop)!r}")

    def visit_resource_expression(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        parent = node.child_by_field_name("object")
        child = node.child_by_field_name("resource")
        if parent is None:
            return
        self.visit(parent, scope)
        if parent.type == "identifier" and child is not None:
            children = self.children_of.get(text(parent))
            if children is not None and text(child) not in children:
                self.report(
                    child, f"resource {text(parent)!r} has no nested resource {text(child)!r}"
                )

    def visit_object_property(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        parts = named_children(node)
        for index, child in enumerate(parts):
            # The key of a property is a name, unless it is an interpolated string.
            if (
                index == 0
                and len(parts) > 1
                and child.type in ("identifier", "compatible_identifier")
            ):
                continue
            self.visit(child, scope)

    def visit_resource_declaration(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        name = declared_name(node)
        children = nested_resources(node)
        inner = dict(scope)
        for child in children:
            child_name = declared_name(child)
            if child_name is not None:
                inner[text(child_name)] = SymbolKind.RESOURCE
        for child in named_children(node):
            if child != name:
                self.visit(child, inner)

    def visit_module_declaration(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        name = declared_name(node)
        for child in named_children(node):
            if child != name:
                self.visit(child, scope)
        interface = self.module_interfaces.get(text(name)) if name is not None else None
        body = declaration_body(node)
        if interface is None or body is None:
            return
        params = property_value(body, "params")
        if params is None:
            passed: set[str] = set()
        elif params.type == "object":
            passed = {key for key, _ in object_properties(params)}
            for prop in named_children(params):
                key_node = named_children(prop)[0] if named_children(prop) else None
                if key_node is not None and text(key_node) not in interface.parameters:
                    self.report(key_node, f"module has no parameter {text(key_node)!r}")
        else:
            return  # params built by an expression: not checked statically
        for missing in sorted(interface.required_parameters - passed):
            self.report(name or node, f"module call does not pass required parameter {missing!r}")

    def visit_for_statement(self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]) -> None:
        body = node.child_by_field_name("body")
        initializer = node.child_by_field_name("initializer")
        inner = dict(scope)
        iterables: list[tree_sitter.Node] = []
        for child in named_children(node):
            if child == body:
                continue
            if child == initializer:
                inner[text(child)] = SymbolKind.LOCAL
            elif child.type == "for_loop_parameters":
                for variable in named_children(child):
                    inner[text(variable)] = SymbolKind.LOCAL
            else:
                iterables.append(child)
        for iterable in iterables:
            self.visit(iterable, scope)
        if body is not None:
            self.visit(body, inner)

    def visit_lambda_expression(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        parts = named_children(node)
        if not parts:
            return
        params, body = parts[0], parts[1:]
        inner = dict(scope)
        names = [params] if params.type == "identifier" else named_children(params)
        for name in names:
            if name.type == "identifier":
                inner[text(name)] = SymbolKind.LOCAL
        for child in body:
            self.visit(child, inner)

    def visit_user_defined_function(
        self, node: tree_sitter.Node, scope: Mapping[str, SymbolKind]
    ) -> None:
        name = node.child_by_field_name("name")
        inner = dict(scope)
        for child in named_children(node):
            if child.type == "parameters":
                for parameter in named_children(child):
                    parameter_name = declared_name(parameter)
                    if parameter_name is not None:
                        inner[text(parameter_name)] = SymbolKind.LOCAL
                    for part in named_children(parameter):
                        if part != parameter_name:
                            self.visit(part, scope)
        for child in named_children(node):
            if child != name and child.type != "parameters":
                self.visit(child, inner)


def check_source(
    source: bytes,
    *,
    path: Path | None = None,
    label: str = "<source>",
    report_unused: bool = False,
) -> list[Problem]:
    """Syntax errors, then (only if the syntax is sound) undeclared and, if asked, unused names."""
    tree = parse(source)
    errors = syntax_errors(tree, label)
    if errors:
        return errors
    checker = _Checker(tree, path, label)
    problems = checker.check()
    return problems + checker.unused() if report_unused else problems


def check_file(path: Path, root: Path | None = None) -> list[Problem]:
    label = str(path.relative_to(root)) if root is not None else str(path)
    return check_source(path.read_bytes(), path=path, label=label, report_unused=True)


# -- .bicepparam files ----------------------------------------------------------------------
# The grammar has no rule for a parameters file's ``param name = value``, so each assignment's
# value is parsed as a Bicep expression on its own. Format:
# https://learn.microsoft.com/azure/azure-resource-manager/bicep/parameter-files

_USING = re.compile(r"^using\s+'(?P<target>[^']+)'\s*$")
_ASSIGNMENT = re.compile(r"^param\s+(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.+)$")


def check_parameters_file(path: Path, root: Path | None = None) -> list[Problem]:
    label = str(path.relative_to(root)) if root is not None else str(path)
    problems: list[Problem] = []
    target: ModuleInterface | None = None
    assigned: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        # Whole-line comments only: "//" also occurs inside strings (URLs); a trailing comment
        # stays with the value, where the grammar accepts it.
        if not line or line.startswith("//"):
            continue
        if using := _USING.match(line):
            target_path = (path.parent / using["target"]).resolve()
            if not target_path.is_file():
                problems.append(
                    Problem(
                        path=label,
                        line=number,
                        column=1,
                        message=f"using target {using['target']!r} not found",
                    )
                )
                continue
            target = module_interface(parse(target_path.read_bytes()))
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment is None:
            problems.append(
                Problem(
                    path=label,
                    line=number,
                    column=1,
                    message=f"not a parameter assignment: {line!r}",
                )
            )
            continue
        name = assignment["name"]
        assigned.add(name)
        if target is not None and name not in target.parameters:
            problems.append(
                Problem(
                    path=label,
                    line=number,
                    column=1,
                    message=f"{name!r} is not a parameter of the template",
                )
            )
        prefix = "var value = "
        # Columns point into the original line: shift from the wrapper to where the value starts.
        shift = len(raw) - len(raw.lstrip()) + assignment.start("value") - len(prefix)
        expression = f"{prefix}{assignment['value']}\n".encode()
        for problem in check_source(expression, label=label):
            problems.append(
                Problem(
                    path=label, line=number, column=problem.column + shift, message=problem.message
                )
            )
    if target is None:
        problems.append(Problem(path=label, line=1, column=1, message="no using statement"))
    else:
        for missing in sorted(target.required_parameters - assigned):
            problems.append(
                Problem(
                    path=label,
                    line=1,
                    column=1,
                    message=f"required parameter {missing!r} is not set",
                )
            )
    return problems
