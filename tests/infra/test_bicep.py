"""The Bicep templates parse with a real grammar and reference only what they declare.

There is no Bicep compiler on these machines; ``bicepcheck`` (tree-sitter-bicep) is the syntax
gate, and the invented snippets below prove that it fails on what it must catch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bicepcheck import Problem, check_file, check_parameters_file, check_source

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def messages(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems]


def test_infra_has_the_main_templates_and_their_modules() -> None:
    assert [path.relative_to(INFRA).as_posix() for path in BICEP_FILES] == [
        "main.bicep",
        "managementgroup.bicep",
        "modules/app.bicep",
        "modules/findings-table.bicep",
        "modules/function-app.bicep",
        "modules/monitoring.bicep",
        "modules/registry-policy.bicep",
        "modules/registry-wiring.bicep",
        "modules/registry.bicep",
        "modules/storage.bicep",
        "modules/subscription-reader.bicep",
        "modules/workspace-reader.bicep",
        "subscription.bicep",
    ]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.relative_to(INFRA).as_posix())
def test_template_parses_and_references_only_declared_names(path: Path) -> None:
    assert messages(check_file(path, PROJECT_ROOT)) == []


def test_parameters_file_sets_only_template_parameters_and_every_required_one() -> None:
    assert messages(check_parameters_file(INFRA / "main.bicepparam", PROJECT_ROOT)) == []


# -- the checker catches what it must (invented snippets) -----------------------------------


def test_syntax_error_is_reported() -> None:
    # A resource declaration without its type string.
    assert messages(check_source(b"resource r = {}\n")) == [
        "<source>:1:1: syntax error near 'resource r = {}'"
    ]


def test_missing_token_is_reported_with_its_position() -> None:
    assert messages(check_source(b"var a = ")) == ["<source>:1:8: syntax error: missing identifier"]


def test_undeclared_variable_is_reported() -> None:
    assert messages(check_source(b"var a = b\n")) == ["<source>:1:9: 'b' is not declared"]


def test_undeclared_name_in_string_interpolation_is_reported() -> None:
    source = b"param p string\nvar a = '${p}-${q}'\n"
    assert messages(check_source(source)) == ["<source>:2:17: 'q' is not declared"]


def test_undeclared_name_in_interpolated_object_key_is_reported() -> None:
    source = b"var a = {\n  '${nope}': {}\n}\n"
    assert messages(check_source(source)) == ["<source>:2:6: 'nope' is not declared"]


def test_loop_variable_is_not_visible_outside_its_loop() -> None:
    source = b"var a = [for item in range(0, 2): item]\nvar b = item\n"
    assert messages(check_source(source)) == ["<source>:2:9: 'item' is not declared"]


def test_loop_variable_is_not_visible_in_its_own_iterable() -> None:
    source = b"var a = [for i in range(0, i): i]\n"
    assert messages(check_source(source)) == ["<source>:1:28: 'i' is not declared"]


def test_lambda_parameter_is_not_visible_outside_the_lambda() -> None:
    source = b"var a = map([1], x => x + 1)\nvar b = x\n"
    assert messages(check_source(source)) == ["<source>:2:9: 'x' is not declared"]


def test_unknown_function_is_reported() -> None:
    assert messages(check_source(b"var a = notAFunction(1)\n")) == [
        "<source>:1:9: function notAFunction() is neither declared nor built in"
    ]


def test_unknown_decorator_is_reported() -> None:
    assert messages(check_source(b"@descripton('typo')\nparam p string\n")) == [
        "<source>:1:2: unknown decorator @descripton"
    ]


def test_undeclared_type_is_reported() -> None:
    assert messages(check_source(b"param p settingsType\n")) == [
        "<source>:1:9: type 'settingsType' is not declared"
    ]


def test_unknown_nested_resource_is_reported() -> None:
    source = b"""resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'x'
  resource blobs 'blobServices' existing = {
    name: 'default'
  }
}
output id string = account::queues.id
"""
    assert messages(check_source(source)) == [
        "<source>:7:29: resource 'account' has no nested resource 'queues'"
    ]


def test_unused_parameter_variable_and_function_are_reported_when_asked() -> None:
    source = b"""param used string
param idle string
var alsoIdle = used
func helper() string => 'x'
"""
    assert messages(check_source(source, report_unused=True)) == [
        "<source>:2:7: parameter 'idle' is declared but never used",
        "<source>:3:5: variable 'alsoIdle' is declared but never used",
        "<source>:4:6: func 'helper' is declared but never used",
    ]


def test_loop_variable_shadowing_a_variable_does_not_count_as_its_use() -> None:
    source = b"var item = 1\nvar items = [for item in range(0, 2): item]\noutput o array = items\n"
    assert messages(check_source(source, report_unused=True)) == [
        "<source>:1:5: variable 'item' is declared but never used"
    ]


def test_own_output_is_not_a_symbol() -> None:
    assert messages(check_source(b"output a string = 'x'\noutput b string = a\n")) == [
        "<source>:2:19: 'a' is not declared"
    ]


def test_duplicate_declaration_is_reported() -> None:
    assert messages(check_source(b"param p string\nvar p = 1\n")) == [
        "<source>:2:5: 'p' is declared more than once"
    ]


def test_valid_constructs_are_accepted() -> None:
    # Every kind of scope the checker models, in one file that Bicep accepts.
    source = b"""targetScope = 'resourceGroup'
import { shared } from 'types.bicep'
type pair = { left: string, right: int? }
func twice(value int) int => value * 2
@description('A typed parameter.')
@secure()
param settings pair
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (true) {
  name: 'x'
  resource blobs 'blobServices' existing = {
    name: 'default'
  }
}
var looped = [for (item, index) in range(0, 2): { item: item, index: index, double: twice(item) }]
var mapped = map(looped, entry => entry.item)
var summed = reduce(mapped, 0, (total, next) => total + next)
var nested = account::blobs.id
var location = az.resourceGroup().location
var text = '${settings.left}-${location}-${sys.concat('a', 'b')}'
var keys = account.listKeys().keys
var optional = account.?properties ?? {}
var imported = shared
"""
    assert messages(check_source(source)) == []


# -- modules (cross-file) ---------------------------------------------------------------------


@pytest.fixture()
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "child.bicep").write_text(
        "param required string\nparam optional string = 'x'\noutput name string = required\n"
    )
    return tmp_path


def check_main(module_dir: Path, source: str) -> list[str]:
    main = module_dir / "main.bicep"
    main.write_text(source)
    return messages(check_file(main, module_dir))


def test_module_call_with_its_parameters_is_accepted(module_dir: Path) -> None:
    source = (
        "module child 'child.bicep' = {\n  name: 'c'\n  params: { required: 'a' }\n}\n"
        "output o string = child.outputs.name\n"
    )
    assert check_main(module_dir, source) == []


def test_module_parameter_that_does_not_exist_is_reported(module_dir: Path) -> None:
    source = (
        "module child 'child.bicep' = {\n  name: 'c'\n"
        "  params: {\n    required: 'a'\n    typo: 'b'\n  }\n}\n"
    )
    assert check_main(module_dir, source) == ["main.bicep:5:5: module has no parameter 'typo'"]


def test_module_call_without_a_required_parameter_is_reported(module_dir: Path) -> None:
    source = "module child 'child.bicep' = {\n  name: 'c'\n  params: { optional: 'a' }\n}\n"
    assert check_main(module_dir, source) == [
        "main.bicep:1:8: module call does not pass required parameter 'required'"
    ]


def test_module_output_that_does_not_exist_is_reported(module_dir: Path) -> None:
    source = (
        "module child 'child.bicep' = {\n  name: 'c'\n  params: { required: 'a' }\n}\n"
        "output o string = child.outputs.id\n"
    )
    assert check_main(module_dir, source) == ["main.bicep:5:33: module 'child' has no output 'id'"]


def test_missing_module_file_is_reported(module_dir: Path) -> None:
    source = "module other 'other.bicep' = {\n  name: 'o'\n}\n"
    assert check_main(module_dir, source) == [
        "main.bicep:1:14: module file 'other.bicep' not found"
    ]


# -- parameters files -------------------------------------------------------------------------


def check_params(module_dir: Path, source: str) -> list[str]:
    params = module_dir / "main.bicepparam"
    params.write_text(source)
    return messages(check_parameters_file(params, module_dir))


def test_parameters_file_for_the_template_is_accepted(module_dir: Path) -> None:
    source = "using './child.bicep'\n// a comment\nparam required = readEnvironmentVariable('X', 'https://example.test')\n"
    assert check_params(module_dir, source) == []


def test_parameters_file_setting_an_unknown_parameter_is_reported(module_dir: Path) -> None:
    source = "using './child.bicep'\nparam required = 'a'\nparam typo = 'b'\n"
    assert check_params(module_dir, source) == [
        "main.bicepparam:3:1: 'typo' is not a parameter of the template"
    ]


def test_parameters_file_missing_a_required_parameter_is_reported(module_dir: Path) -> None:
    source = "using './child.bicep'\nparam optional = 'a'\n"
    assert check_params(module_dir, source) == [
        "main.bicepparam:1:1: required parameter 'required' is not set"
    ]


def test_parameters_file_value_with_a_syntax_error_is_reported(module_dir: Path) -> None:
    source = "using './child.bicep'\nparam required = concat('a',\n"
    assert check_params(module_dir, source) == ["main.bicepparam:2:24: syntax error near \"('a',\""]
