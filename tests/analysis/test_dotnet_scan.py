"""End to end: a .NET application image scanned against GitHub's NuGet advisories.

The image is built by the test (``scanning.ocibuild``): the application's deps file is Trivy's
real ``datacollector.deps.json`` (``pkgdb/dotnet/trivy-analyzer-deps/``: Newtonsoft.Json
9.0.1), and the shared runtime folders ``usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.2/``
and ``Microsoft.AspNetCore.App/8.0.2/`` hold the framework deps files in the shape .NET 8
ships (written here: no real runtime is in the shared data). The index is compiled from the
real GHSA NuGet records in ``advisories/osv/nuget-ghsa/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanning.cli import main
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout

RUNTIME = "usr/share/dotnet/shared"


def framework_deps(framework: str, version: str) -> bytes:
    key = f"{framework}.Runtime.linux-x64/{version}"
    return json.dumps({
        "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/linux-x64", "signature": ""},
        "targets": {".NETCoreApp,Version=v8.0/linux-x64": {key: {"runtime": {}}}},
        "libraries": {key: {"type": "runtimepack", "serviceable": False, "sha512": ""}},
    }).encode()


@pytest.fixture(scope="module")
def report(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("dotnet")
    app = (testdata / "pkgdb/dotnet/trivy-analyzer-deps/datacollector.deps.json").read_bytes()
    build_oci_layout(folder / "image", [(Platform(os="linux", architecture="amd64"), [
        {f"{RUNTIME}/Microsoft.NETCore.App/8.0.2/Microsoft.NETCore.App.deps.json":
             framework_deps("Microsoft.NETCore.App", "8.0.2"),
         f"{RUNTIME}/Microsoft.AspNetCore.App/8.0.2/Microsoft.AspNetCore.App.deps.json":
             framework_deps("Microsoft.AspNetCore.App", "8.0.2")},
        {"app/datacollector.deps.json": app},
    ])])
    index = folder / "nuget.idx"
    records = testdata / "advisories/osv/nuget-ghsa"
    assert main(["db", "build", "--osv", str(records), "--ecosystem", "NuGet",
                 "--out", str(index)]) == 0
    output = folder / "report.json"
    main(["scan", f"oci:{folder / 'image'}", "--db", str(index), "--format", "json",
          "--output", str(output)])
    return json.loads(output.read_text())  # type: ignore[no-any-return]


def test_packages_are_nuget_packages_with_purls(report: dict[str, Any]) -> None:
    assert sorted((p["name"], p["version"], p["ecosystem"], p["purl"], p["path"])
                  for p in report["platforms"][0]["packages"]) == [
        ("Microsoft.AspNetCore.App.Runtime.linux-x64", "8.0.2", "NuGet",
         "pkg:nuget/Microsoft.AspNetCore.App.Runtime.linux-x64@8.0.2",
         f"{RUNTIME}/Microsoft.AspNetCore.App/8.0.2/Microsoft.AspNetCore.App.deps.json"),
        ("Microsoft.NETCore.App.Runtime.linux-x64", "8.0.2", "NuGet",
         "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@8.0.2",
         f"{RUNTIME}/Microsoft.NETCore.App/8.0.2/Microsoft.NETCore.App.deps.json"),
        ("Newtonsoft.Json", "9.0.1", "NuGet", "pkg:nuget/Newtonsoft.Json@9.0.1",
         "app/datacollector.deps.json"),
    ]


def test_findings_for_the_runtime_and_the_application_package(report: dict[str, Any]) -> None:
    # No record in the fixture names Microsoft.AspNetCore.App.Runtime.linux-x64: no finding.
    platform = report["platforms"][0]
    assert (platform["status"], platform["reason"], [
        (f["package"], f["installedVersion"], f["id"], f["aliases"], f["fixedVersion"],
         f["severity"])
        for f in platform["findings"]
    ]) == ("unhealthy", "", [
        # Alias groups: a finding is named by its CVE, the GHSA id is an alias.
        ("Microsoft.NETCore.App.Runtime.linux-x64", "8.0.2", "CVE-2024-21392",
         ["GHSA-5fxj-whcv-crrc"], "8.0.3", "high"),
        # GHSA-8rfx-6mr3-5jh3, the withdrawn duplicate of this advisory, gives nothing.
        ("Newtonsoft.Json", "9.0.1", "GHSA-5crp-9r3c-p9vr", [], "13.0.1", "low"),
    ])
