""".NET analyzer: ``*.deps.json`` files and the shared runtime folders.

Fixtures: ``../shared/testdata/pkgdb/dotnet/`` (Trivy's and Syft's deps.json fixtures with the
packages those tools expect; we follow Trivy where they differ). Trivy also reports
``project`` libraries (the application and its referenced projects); we do not, so the
expected lists below are theirs without the libraries the fixture marks
``"type": "project"``. The runtime's own ``Microsoft.NETCore.App.deps.json`` is written by
``runtime_deps`` in the shape the .NET 8 runtime ships (invented content: no real runtime
file is in the shared data).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanning.analyzers import ANALYZERS
from scanning.analyzers.base import AnalyzerInput
from scanning.analyzers.dotnet import DotnetDepsAnalyzer
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

DOTNET = "pkgdb/dotnet"


def analyze(data: bytes, path: str) -> tuple[Package, ...]:
    return DotnetDepsAnalyzer().analyze(
        AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data))
    ).packages


def names_versions(packages: tuple[Package, ...]) -> list[tuple[str, str]]:
    return sorted((p.name, p.version) for p in packages)


def expected_without_projects(fixture: Path, expected: Path) -> list[tuple[str, str]]:
    libraries = json.loads(fixture.read_text()).get("libraries", {})
    projects = {key.rpartition("/")[0] for key, lib in libraries.items()
                if lib.get("type") == "project"}
    return sorted((e["name"], e["version"]) for e in json.loads(expected.read_text())
                  if e["name"] not in projects)


@pytest.mark.parametrize("fixture", [
    "trivy-core-deps/happy.deps.json",
    "trivy-core-deps/ambiguous-root.deps.json",
    "trivy-core-deps/missing-target.deps.json",
    "trivy-core-deps/multi-project.deps.json",
    "trivy-core-deps/no-libraries.deps.json",
    "trivy-core-deps/self-contained.deps.json",
    "trivy-core-deps/without-runtime.deps.json",
    "trivy-analyzer-deps/datacollector.deps.json",
])
def test_packages_agree_with_the_reference_tools(testdata: Path, fixture: str) -> None:
    file = testdata / DOTNET / fixture
    expected = file.with_name(file.name + ".EXPECTED.json")
    assert names_versions(analyze(file.read_bytes(), f"app/{file.name}")) == (
        expected_without_projects(file, expected)
    )


def test_syft_fixture_without_the_packages_nothing_is_loaded_from(testdata: Path) -> None:
    # Syft lists every "package" library; like Trivy we leave out the two whose target entry
    # lists no runtime assets (System.Diagnostics.DiagnosticSource: only dependencies,
    # System.Runtime.CompilerServices.Unsafe: empty), as nothing of them is loaded.
    file = testdata / DOTNET / "syft-deps/TestLibrary.deps.json"
    expected = expected_without_projects(file, file.with_name(file.name + ".EXPECTED.json"))
    assert names_versions(analyze(file.read_bytes(), "app/TestLibrary.deps.json")) == [
        entry for entry in expected
        if entry not in {("System.Diagnostics.DiagnosticSource", "6.0.0"),
                         ("System.Runtime.CompilerServices.Unsafe", "6.0.0")}
    ]


def test_syft_reference_assembly_fixture_partial_expectations(testdata: Path) -> None:
    folder = testdata / DOTNET / "syft-deps"
    expected = json.loads((folder / "MyApp.deps.json.EXPECTED-PARTIAL.json").read_text())
    found = names_versions(analyze((folder / "MyApp.deps.json").read_bytes(),
                                   "app/MyApp.deps.json"))
    assert (
        all((e["name"], e["version"]) in found for e in expected["must_include"]),
        [n for n, _ in found if n in expected["must_not_include_names"]],
        [v for _, v in found if v in expected["must_not_include_versions"]],
    ) == (True, [], [])


def test_package_has_a_nuget_purl_and_the_deps_file_path(testdata: Path) -> None:
    file = testdata / DOTNET / "trivy-core-deps/happy.deps.json"
    assert analyze(file.read_bytes(), "app/ExampleApp1.deps.json") == (Package(
        type=PackageType.NUGET, name="Newtonsoft.Json", version="13.0.1",
        purl="pkg:nuget/Newtonsoft.Json@13.0.1", path="app/ExampleApp1.deps.json"),)


def test_invalid_json_names_the_file_and_position(testdata: Path) -> None:
    file = testdata / DOTNET / "trivy-core-deps/invalid.deps.json"
    with pytest.raises(AnalyzerError) as raised:
        analyze(file.read_bytes(), "app/invalid.deps.json")
    assert str(raised.value).startswith("dotnet-deps: app/invalid.deps.json: not valid JSON: ")
    assert " line " in str(raised.value) and " column " in str(raised.value)


def test_libraries_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(AnalyzerError) as raised:
        analyze(b'{"libraries": []}', "app/a.deps.json")
    assert str(raised.value) == "dotnet-deps: app/a.deps.json: 'libraries' is not an object"


def test_library_key_without_version_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = b'{"libraries": {"Broken": {"type": "package"}, "Ok/1.0.0": {"type": "package"}}}'
    packages = analyze(data, "app/a.deps.json")
    assert (names_versions(packages), [r.getMessage() for r in caplog.records]) == (
        [("Ok", "1.0.0")],
        ["dotnet-deps: app/a.deps.json: skipping library 'Broken': not 'name/version'"],
    )


def runtime_deps(framework: str, version: str, runtime_id: str) -> bytes:
    key = f"{framework}.Runtime.{runtime_id}/{version}"
    return json.dumps({
        "runtimeTarget": {"name": f".NETCoreApp,Version=v8.0/{runtime_id}", "signature": ""},
        "compilationOptions": {},
        "targets": {".NETCoreApp,Version=v8.0": {},
                    f".NETCoreApp,Version=v8.0/{runtime_id}": {key: {"runtime": {}}}},
        "libraries": {key: {"type": "runtimepack", "serviceable": False, "sha512": ""}},
    }).encode()


def test_shared_runtime_folder_is_its_runtime_pack() -> None:
    path = "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.2/Microsoft.NETCore.App.deps.json"
    assert analyze(runtime_deps("Microsoft.NETCore.App", "8.0.2", "linux-x64"), path) == (
        Package(type=PackageType.NUGET, name="Microsoft.NETCore.App.Runtime.linux-x64",
                version="8.0.2", purl="pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@8.0.2",
                path=path),
    )


def test_aspnetcore_runtime_version_comes_from_its_folder() -> None:
    path = ("usr/share/dotnet/shared/Microsoft.AspNetCore.App/8.0.2/"
            "Microsoft.AspNetCore.App.deps.json")
    packages = analyze(runtime_deps("Microsoft.AspNetCore.App", "8.0.1", "linux-musl-arm64"), path)
    assert names_versions(packages) == [("Microsoft.AspNetCore.App.Runtime.linux-musl-arm64",
                                         "8.0.2")]


def test_runtime_2_x_is_named_by_its_framework() -> None:
    path = "usr/share/dotnet/shared/Microsoft.NETCore.App/2.1.7/Microsoft.NETCore.App.deps.json"
    data = b'{"runtimeTarget": {"name": ".NETCoreApp,Version=v2.1"}, "libraries": {}}'
    assert names_versions(analyze(data, path)) == [("Microsoft.NETCore.App", "2.1.7")]


def test_runtime_without_runtime_identifier_is_an_error() -> None:
    path = "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.2/Microsoft.NETCore.App.deps.json"
    with pytest.raises(AnalyzerError, match="names no runtime identifier"):
        analyze(b'{"runtimeTarget": {"name": ".NETCoreApp,Version=v8.0"}}', path)


def test_required_takes_every_deps_json_and_is_in_the_analyzer_list() -> None:
    analyzer = DotnetDepsAnalyzer()
    assert (analyzer.required("app/MyApp.deps.json", 0o100644),
            analyzer.required("app/MyApp.runtimeconfig.json", 0o100644),
            analyzer.required("app/MyApp.deps.json", 0o120777),
            "dotnet-deps" in {a.name for a in ANALYZERS}) == (True, False, False, True)
