"""Maven artifacts inside Java archives (jar, war, ear, par, Jenkins jpi/hpi), nested ones too.

Follows trivy's jar parser (``pkg/dependency/parser/java/jar/parse.go``) in offline mode:

* every ``pom.properties`` with groupId, artifactId and version is a package of the archive
  that holds it (fat jars carry several);
* when none of them is the archive's own (matched by the ``name-version.jar`` file name), the
  archive itself is identified from the main section of ``META-INF/MANIFEST.MF``
  (Implementation-/Specification-/Bundle- fields);
* archives nested inside (``WEB-INF/lib/*.jar``, ``BOOT-INF/lib/*.jar``, ...) are read the same
  way, with ``<outer path>/<entry name>`` as their path;
* licenses: ``<licenses>`` names of the embedded ``META-INF/maven/<g>/<a>/pom.xml``, then the
  manifest's Jenkins ``Plugin-License-Name`` or OSGi ``Bundle-License`` (resolved to SPDX ids).

Not done, on purpose: trivy's online lookups (Maven Central by SHA-1, by artifactId from the
file name) and its classification of packed LICENSE files. So a jar with neither pom.properties
nor a usable manifest yields nothing, where trivy online may find it.

Limits (zip bombs): nesting depth, the total bytes inflated for one top-level archive, and the
size of each metadata file are capped: too deep or too much inflated raises ``AnalyzerError``.
An entry that cannot be read costs that entry only, with a warning naming it: a metadata file
over its cap or not inflatable, a nested archive that is not a readable zip (trivy skips those
too: test resources are often named ``*.jar``) or that points outside its parent.
"""

from __future__ import annotations

import html
import posixpath
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from typing import IO

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.records import EntryLog
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

_TOP_LEVEL_EXTENSIONS = (".jar", ".war", ".ear", ".par", ".jpi", ".hpi")
_NESTED_EXTENSIONS = (".jar", ".war", ".ear")  # trivy isArtifact
MAX_ARCHIVE_SIZE = 512 * 1024 * 1024
MAX_NESTING_DEPTH = 8
MAX_INFLATED_TOTAL = 1024 * 1024 * 1024
MAX_METADATA_FILE = 10 * 1024 * 1024  # trivy's cap on MANIFEST.MF; real files are a few KiB
_SPOOL_IN_MEMORY = 16 * 1024 * 1024
_CHUNK = 1024 * 1024

# trivy jarFileRegEx: artifactId and version from "artifact-1.2.3.jar".
_JAR_FILE_NAME = re.compile(r"^([a-zA-Z0-9\._-]*[^-*])-(\d\S*(?:-SNAPSHOT)?).jar$")
# Maven's id pattern (DefaultModelValidator ID_REGEX).
_MAVEN_GROUP_ID = re.compile(r"[A-Za-z0-9_\-.]+")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # encrypted entries
)


class _ArchiveError(Exception):
    """Internal: an archive cannot be read."""


class _EntryError(Exception):
    """Internal: one entry of an archive cannot be read; the rest of the archive stands."""


@dataclass(slots=True, kw_only=True)
class _Budget:
    inflated: int = 0

    def spend(self, count: int) -> None:
        self.inflated += count
        if self.inflated > MAX_INFLATED_TOTAL:
            raise AnalyzerError(
                f"archive inflates to more than {MAX_INFLATED_TOTAL} bytes (zip bomb?)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Properties:
    group_id: str = ""
    artifact_id: str = ""
    version: str = ""

    @property
    def valid(self) -> bool:
        return bool(self.group_id and self.artifact_id and self.version)


@dataclass(slots=True, kw_only=True)
class _Manifest:
    fields: dict[str, str] = field(default_factory=dict)
    plugin_license_lines: list[str] = field(default_factory=list)

    def properties(self) -> _Properties:
        """trivy manifest.properties: the archive's own coordinates, or empty."""
        get = self.fields.get
        symbolic = get("Bundle-SymbolicName", "")
        group = (
            get("Implementation-Vendor-Id")
            or (symbolic.rsplit(".", 1)[0] if symbolic else "")
            or get("Implementation-Vendor")
            or get("Specification-Vendor")
            or ""
        )
        artifact = (
            get("Implementation-Title") or get("Specification-Title") or get("Bundle-Name") or ""
        )
        version = (
            get("Implementation-Version")
            or get("Specification-Version")
            or get("Bundle-Version")
            or ""
        )
        group = group.strip()
        if not (group and artifact and version):
            return _Properties()
        if not _MAVEN_GROUP_ID.fullmatch(group):
            # Deliberate difference from trivy offline: a free-text vendor ("JBoss by Red Hat")
            # is not a groupId. trivy online drops such guesses after asking Maven Central.
            return _Properties()
        return _Properties(group_id=group, artifact_id=artifact.strip(), version=version.strip())

    def license_names(self) -> list[str]:
        names = [name for line in self.plugin_license_lines if (name := _plugin_license(line))]
        if names:
            return names
        return _bundle_licenses(self.fields.get("Bundle-License", ""))


class JavaArchiveAnalyzer:
    name = "java"
    version = 2
    max_file_size = MAX_ARCHIVE_SIZE

    def required(self, path: str, mode: int) -> bool:
        return path.lower().endswith(_TOP_LEVEL_EXTENSIONS)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        entries = EntryLog(self.name, file.path)
        try:
            packages = _parse_archive(file.reader, file.path, depth=0, budget=_Budget(),
                                      entries=entries)
        except _ArchiveError as exc:
            raise AnalyzerError(f"{file.path}: {exc}") from exc
        return AnalyzerOutput(packages=tuple(_remove_duplicates(packages)),
                              warnings=entries.warnings())


def _skip(entries: EntryLog, path: str, reason: str) -> None:
    """Note a skipped entry by its path inside the top-level archive."""
    entries.skip(f"entry {path.removeprefix(entries.path + '/')}", reason)


def _parse_archive(reader: IO[bytes], path: str, *, depth: int, budget: _Budget,
                   entries: EntryLog) -> list[Package]:
    if depth > MAX_NESTING_DEPTH:
        raise AnalyzerError(f"{path}: archives nested more than {MAX_NESTING_DEPTH} deep")
    file_props = _file_name_properties(path)
    packages: list[Package] = []
    manifest = _Manifest()
    found_own_pom = False
    pom_licenses: dict[str, list[str]] = {}
    try:
        archive = zipfile.ZipFile(reader)
    except _ZIP_ERRORS as exc:
        raise _ArchiveError(f"not a readable zip archive: {exc}") from exc
    with archive:
        for entry in archive.infolist():
            name = entry.filename
            base = name.rsplit("/", 1)[-1]
            if entry.is_dir():
                continue
            try:
                if base == "pom.xml":
                    coordinates = _embedded_pom_coordinates(name)
                    if coordinates is not None:
                        names = _pom_licenses(_read_metadata(archive, entry, budget))
                        if names:
                            pom_licenses[coordinates] = names
                elif base == "pom.properties":
                    props = _parse_pom_properties(_read_metadata(archive, entry, budget))
                    if props.valid:
                        packages.append(_package(props, path))
                        if (props.artifact_id, props.version) == file_props:
                            found_own_pom = True
                elif base == "MANIFEST.MF":
                    manifest = _parse_manifest(_read_metadata(archive, entry, budget))
                elif name.endswith(_NESTED_EXTENSIONS):
                    packages.extend(_parse_nested(archive, entry, path, depth=depth,
                                                  budget=budget, entries=entries))
            except _EntryError as exc:
                _skip(entries, f"{path}/{name}", str(exc))

    for index, package in enumerate(packages):
        if not package.licenses and package.name in pom_licenses:
            packages[index] = replace(package, licenses=tuple(pom_licenses[package.name]))
    if not found_own_pom:
        own = manifest.properties()
        if own.valid:
            packages.append(_package(own, path))
    names = manifest.license_names()
    if names:
        owned = [i for i, package in enumerate(packages) if package.path == path]
        if len(owned) == 1 and not packages[owned[0]].licenses:
            packages[owned[0]] = replace(packages[owned[0]], licenses=tuple(names))
    return packages


def _parse_nested(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    outer_path: str,
    *,
    depth: int,
    budget: _Budget,
    entries: EntryLog,
) -> list[Package]:
    inner_path = posixpath.normpath(posixpath.join(outer_path, entry.filename))
    if not inner_path.startswith(outer_path + "/"):
        raise _EntryError("nested archive points outside its parent")
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        try:
            with archive.open(entry) as source:
                _copy_counted(source, spool, budget)
        except _ZIP_ERRORS as exc:
            raise _EntryError(f"cannot inflate nested archive: {exc}") from exc
        spool.seek(0)
        try:
            return _parse_archive(spool, inner_path, depth=depth + 1, budget=budget,
                                  entries=entries)
        except _ArchiveError as exc:
            raise _EntryError(f"nested archive {exc}") from exc


def _copy_counted(source: IO[bytes], target: IO[bytes], budget: _Budget) -> None:
    while chunk := source.read(_CHUNK):
        budget.spend(len(chunk))
        target.write(chunk)


def _read_metadata(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, budget: _Budget) -> str:
    try:
        with archive.open(entry) as source:
            data = source.read(MAX_METADATA_FILE + 1)
    except _ZIP_ERRORS as exc:
        raise _EntryError(f"cannot inflate: {exc}") from exc
    budget.spend(len(data))
    if len(data) > MAX_METADATA_FILE:
        raise _EntryError(f"larger than {MAX_METADATA_FILE} bytes")
    return data.decode("utf-8", errors="replace")


def _file_name_properties(path: str) -> tuple[str, str]:
    match = _JAR_FILE_NAME.match(path.rsplit("/", 1)[-1])
    return (match.group(1), match.group(2)) if match else ("", "")


def _parse_pom_properties(text: str) -> _Properties:
    """The three coordinates of a pom.properties file.

    java.util.Properties.load: the key ends at the first ``=``, ``:`` or whitespace, and blanks
    around that separator are skipped. Deliberately a little wider than trivy, which only
    accepts ``key=value`` and keeps a blank after the ``=``; escapes and continuation lines
    (never written by Maven) are not supported.
    """
    values = {"groupId": "", "artifactId": "", "version": ""}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line[0] in "#!":
            continue
        match = _PROPERTY.match(line)
        if match and match.group(1) in values:
            values[match.group(1)] = match.group(2)
    return _Properties(
        group_id=values["groupId"], artifact_id=values["artifactId"], version=values["version"]
    )


_PROPERTY = re.compile(r"([^=:\s]+)\s*[=:]?\s*(.*)")


def _parse_manifest(text: str) -> _Manifest:
    """The main section of a JAR manifest (ends at the first empty line), lines unfolded.

    JAR File Specification, "Name-Value pairs and Sections": lines end in CRLF, LF or CR; a line
    starting with one space continues the previous one.
    """
    manifest = _Manifest()
    attributes: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text):
        if not line:
            break
        if line.startswith(" ") and attributes:
            attributes[-1] += line[1:]
        else:
            attributes.append(line)
    for attribute in attributes:
        words = attribute.split()
        if len(words) <= 1 or words[1].startswith("%"):
            continue  # no value, or an unresolved variable such as "Bundle-Name: %bundleName"
        key, _, value = attribute.partition(":")
        if key.startswith("Plugin-License-Name"):
            manifest.plugin_license_lines.append(attribute)
        elif key in _MANIFEST_KEYS:
            manifest.fields[key] = value
    return manifest


_MANIFEST_KEYS = frozenset(
    {
        "Implementation-Version",
        "Implementation-Title",
        "Implementation-Vendor",
        "Implementation-Vendor-Id",
        "Specification-Version",
        "Specification-Title",
        "Specification-Vendor",
        "Bundle-Version",
        "Bundle-Name",
        "Bundle-SymbolicName",
        "Bundle-License",
    }
)


def _plugin_license(line: str) -> str:
    key, separator, value = line.partition(":")
    if not separator:
        return ""
    if key != "Plugin-License-Name" and not key.startswith("Plugin-License-Name-"):
        return ""
    return value.strip()


# A small subset of SPDX's "seeAlso" URLs and ids: what real Bundle-License headers use.
_SPDX_BY_URL = {
    "apache.org/licenses/license-2.0": "Apache-2.0",
    "opensource.org/licenses/apache-2.0": "Apache-2.0",
    "opensource.org/licenses/mit": "MIT",
    "opensource.org/licenses/mit-license": "MIT",
    "opensource.org/licenses/bsd-license": "BSD-2-Clause",
    "opensource.org/licenses/bsd-3-clause": "BSD-3-Clause",
    "eclipse.org/legal/epl-v10": "EPL-1.0",
    "eclipse.org/legal/epl-2.0": "EPL-2.0",
    "eclipse.org/org/documents/edl-v10": "BSD-3-Clause",
    "gnu.org/licenses/old-licenses/lgpl-2.1": "LGPL-2.1-only",
    "gnu.org/licenses/old-licenses/gpl-2.0": "GPL-2.0-only",
    "gnu.org/licenses/lgpl-3.0": "LGPL-3.0-only",
    "mozilla.org/mpl/2.0": "MPL-2.0",
    "opensource.org/licenses/cddl-1.0": "CDDL-1.0",
}
_SPDX_IDS = frozenset(_SPDX_BY_URL.values()) | {"Apache-1.1", "ISC", "0BSD", "Unlicense"}


def _spdx_by_url(url: str) -> str:
    key = re.sub(r"^[a-z]+://", "", url.strip().lower()).removeprefix("www.").rstrip("/")
    key = re.sub(r"\.(txt|html?|php)$", "", key)
    return _SPDX_BY_URL.get(key, "")


def _bundle_licenses(header: str) -> list[str]:
    """OSGi Bundle-License: comma-separated ``id-or-url;link=url`` entries; quotes group."""
    names = []
    for entry in _split_unquoted(header, ","):
        fields = _split_unquoted(entry, ";")
        name = fields[0].strip(' "')
        link = ""
        for attribute in fields[1:]:
            key, separator, value = attribute.partition("=")
            if separator and key.strip() == "link":
                link = value.strip(' "')
        if name in _SPDX_IDS:
            names.append(name)
            continue
        resolved = next((spdx for url in (name, link) if url and (spdx := _spdx_by_url(url))), "")
        if resolved:
            names.append(resolved)
    return names


def _split_unquoted(text: str, separator: str) -> list[str]:
    fields = []
    quoted = False
    escaped = False
    start = 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            fields.append(text[start:index])
            start = index + 1
    fields.append(text[start:])
    return fields


def _embedded_pom_coordinates(name: str) -> str | None:
    """``META-INF/maven/<groupId>/<artifactId>/pom.xml`` -> ``groupId:artifactId``."""
    rest = name.removeprefix("META-INF/maven/")
    if rest == name or not rest.endswith("/pom.xml"):
        return None
    group, separator, artifact = rest.removesuffix("/pom.xml").partition("/")
    if not separator or not group or not artifact:
        return None
    return f"{group}:{artifact}"


_LICENSES_BLOCK = re.compile(r"<licenses\b[^>]*>(.*?)</licenses>", re.DOTALL)
_LICENSE = re.compile(r"<license\b[^>]*>(.*?)</license>", re.DOTALL)
_NAME = re.compile(r"<name>(.*?)</name>", re.DOTALL)
_URL = re.compile(r"<url>(.*?)</url>", re.DOTALL)


def _pom_licenses(text: str) -> list[str]:
    """``<licenses><license><name>`` values of a pom.xml.

    Read with regular expressions rather than an XML parser: a pom is untrusted input and only
    these few elements matter; entities other than the predefined ones are left as written.
    """
    block = _LICENSES_BLOCK.search(text)
    if block is None:
        return []
    names = []
    for license_match in _LICENSE.finditer(block.group(1)):
        body = license_match.group(1)
        name_match = _NAME.search(body)
        name = html.unescape(name_match.group(1)).strip() if name_match else ""
        if not name:
            # trivy: an empty <name> falls back to the <url> when it is a known SPDX license URL.
            url_match = _URL.search(body)
            name = _spdx_by_url(html.unescape(url_match.group(1))) if url_match else ""
        if name:
            names.append(name)
    return names


def _package(props: _Properties, path: str) -> Package:
    purl = make_purl(PackageType.MAVEN, props.artifact_id, props.version, namespace=props.group_id)
    return Package(
        type=PackageType.MAVEN,
        name=f"{props.group_id}:{props.artifact_id}",
        version=props.version,
        purl=purl,
        path=path,
    )


def _maven_version_key(version: str) -> tuple[str, ...]:
    """Equal for versions Maven calls equal in the common cases (``2.17`` == ``2.17.0``)."""
    tokens = [token for token in re.split(r"[.\-]", version.lower())]
    while len(tokens) > 1 and tokens[-1] in ("0", "", "final", "ga", "release"):
        tokens.pop()
    return tuple(tokens)


def _remove_duplicates(packages: list[Package]) -> list[Package]:
    """trivy removePackageDuplicates: one package per (name, path, Maven-equal version)."""
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    unique = []
    for package in packages:
        key = (package.name, package.path, _maven_version_key(package.version))
        if key not in seen:
            seen.add(key)
            unique.append(package)
    return unique
