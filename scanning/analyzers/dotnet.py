""".NET: NuGet packages from ``*.deps.json`` files, and the shared runtimes themselves.

A ``<app>.deps.json`` (the .NET host's dependency manifest, written next to every built
application) lists ``libraries`` keyed ``"<name>/<version>"`` with a ``type``:

* ``package``: a NuGet package the application loads: one NuGet package.
* ``runtimepack``: the runtime a self-contained application carries, keyed
  ``runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0``: one NuGet package named
  without the ``runtimepack.`` prefix, the name GitHub's NuGet advisories use.
* ``project`` (the application and the projects it references) and ``reference``
  (reference assemblies): not packages.

As in Trivy's ``core_deps`` parser, a library whose entry under the target that
``runtimeTarget.name`` names lists no ``runtime``, ``runtimeTargets`` or ``native`` assets is
left out: nothing of it is loaded (meta-packages such as ``NETStandard.Library``, compile-time
references). A library the target does not list, or a file without that target, keeps it.

A shared runtime is a folder ``…/shared/Microsoft.NETCore.App/<version>/`` (and
``Microsoft.AspNetCore.App``), as the .NET installers lay out ``usr/share/dotnet``. The file
that identifies it is the framework's own ``Microsoft.NETCore.App.deps.json`` in that folder:
its folder name is the runtime version and its ``runtimeTarget.name``
(``.NETCoreApp,Version=v8.0/linux-x64``) the runtime identifier. GitHub's NuGet advisories
name .NET Core 3.0 and later runtimes by their runtime pack
(``Microsoft.NETCore.App.Runtime.linux-x64``) and 1.x/2.x by the framework
(``Microsoft.NETCore.App``); the package is named the same way, so it matches them.

Invalid JSON, JSON nested deeper than ``MAX_JSON_DEPTH`` and a shape that is not a deps file
are an ``AnalyzerError`` naming the file; a library key that is not ``name/version`` is
skipped with a warning.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.npm import load_json_object
from scanning.analyzers.purl import make_purl
from scanning.analyzers.textfile import is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

_SUFFIX = ".deps.json"
_RUNTIMEPACK_PREFIX = "runtimepack."
_PACKAGE_TYPES = frozenset({"package", "runtimepack"})
# What a target entry lists when the host loads something of the library at run time.
_LOADED_ASSETS = frozenset({"runtime", "runtimeTargets", "native"})
_FRAMEWORK = re.compile(
    r"(?:^|.*/)shared/(?P<framework>Microsoft\.NETCore\.App|Microsoft\.AspNetCore\.App)/"
    r"(?P<version>[0-9][0-9A-Za-z.+-]*)/(?P=framework)\.deps\.json"
)
# Runtime packs per runtime identifier exist from .NET Core 3.0 on.
_FIRST_RUNTIME_PACK_MAJOR = 3


class DotnetDepsAnalyzer:
    name = "dotnet-deps"
    version = 1
    # The largest real deps files (ASP.NET applications with hundreds of packages) are ~1 MiB.
    max_file_size = 16 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        return path.endswith(_SUFFIX) and is_regular_file(mode)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        where = f"{self.name}: {file.path}"
        document = load_json_object(read_capped(file, self.max_file_size, self.name), where)
        framework = _FRAMEWORK.fullmatch(file.path)
        if framework is not None:
            package = _runtime(document, framework["framework"], framework["version"], where)
            return AnalyzerOutput(packages=(_nuget(package[0], package[1], file.path),))
        return AnalyzerOutput(
            packages=tuple(_nuget(name, version, file.path)
                           for name, version in _libraries(document, where))
        )


def _object(document: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise AnalyzerError(f"{where}: '{key}' is not an object")
    return value


def _runtime_target(document: dict[str, Any], where: str) -> str:
    name = _object(document, "runtimeTarget", where).get("name", "")
    if not isinstance(name, str):
        raise AnalyzerError(f"{where}: 'runtimeTarget.name' is not a string")
    return name


def _libraries(document: dict[str, Any], where: str) -> list[tuple[str, str]]:
    libraries = _object(document, "libraries", where)
    targets = _object(document, "targets", where)
    deployed = targets.get(_runtime_target(document, where))
    found: list[tuple[str, str]] = []
    for key, library in libraries.items():
        if not isinstance(library, dict):
            raise AnalyzerError(f"{where}: library {key!r} is not an object")
        if library.get("type") not in _PACKAGE_TYPES:
            continue
        assets = deployed.get(key) if isinstance(deployed, dict) else None
        if isinstance(assets, dict) and not _LOADED_ASSETS.intersection(assets):
            continue
        name, slash, version = key.rpartition("/")
        if not slash or not name or not version:
            logger.warning("%s: skipping library %r: not 'name/version'", where, key)
            continue
        found.append((name.removeprefix(_RUNTIMEPACK_PREFIX), version))
    return found


def _runtime(document: dict[str, Any], framework: str, version: str, where: str
             ) -> tuple[str, str]:
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) < _FIRST_RUNTIME_PACK_MAJOR:
        return framework, version
    _, slash, runtime_id = _runtime_target(document, where).partition("/")
    if not slash or not runtime_id:
        raise AnalyzerError(
            f"{where}: 'runtimeTarget.name' names no runtime identifier (like "
            "'.NETCoreApp,Version=v8.0/linux-x64'), so the runtime pack is unknown"
        )
    return f"{framework}.Runtime.{runtime_id}", version


def _nuget(name: str, version: str, path: str) -> Package:
    return Package(
        type=PackageType.NUGET,
        name=name,
        version=version,
        purl=make_purl(PackageType.NUGET, name, version),
        path=path,
    )
