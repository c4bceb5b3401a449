"""Installed Python distributions: core metadata in ``.dist-info``/``.egg-info``.

Which files (the "installed" rule): the metadata must sit directly in a directory named
``site-packages`` or ``dist-packages`` (any interpreter prefix: ``usr/lib/python3/dist-packages``,
``usr/local/lib/python3.11/site-packages``, ``opt/venv/lib/python3.11/site-packages``):

* ``<site>/<dist>.dist-info/METADATA`` (wheel installs, PEP 627);
* ``<site>/<dist>.egg-info/PKG-INFO`` (setuptools egg-info directory);
* ``<site>/<dist>.egg-info`` as a regular file (distutils writes PKG-INFO under that name).

Not counted: copies vendored inside another package (``setuptools/_vendor/x.dist-info``),
metadata in source trees and test fixtures, and zipped or unzipped ``.egg`` installs.

Parsing (core metadata spec, packaging.python.org "Core metadata specifications"): RFC 822
style headers up to the first blank line; continuation lines start with whitespace. ``Name``
and ``Version`` are required (``AnalyzerError`` without them); a line that is neither a header
nor a continuation is skipped with a warning naming it, the other headers stand. The name is
normalised per PEP 503 (``Unidecode`` -> ``unidecode``; Trivy keeps the name as written).

Licences, in Trivy's order: ``License-Expression``; else the last part of every
``Classifier: License :: ...`` except the bare ``OSI Approved``; else ``License``. Two
deliberate differences from Trivy: ``License: UNKNOWN`` (setuptools' placeholder for "none
given") gives no licence, and a ``License-File`` is not reported as ``file://<name>``.
"""

from __future__ import annotations

import re

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.records import EntryLog
from scanning.analyzers.textfile import clean_text, decode_lenient, is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

_SITE_DIRS = frozenset({"site-packages", "dist-packages"})
# Core metadata "Name" (PEP 508 names).
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# A version as written; PEP 440 validity is for the matcher to judge (legacy versions exist).
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
_HEADER_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)[ \t]*:(.*)")


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PythonAnalyzer:
    name = "python"
    version = 2
    max_file_size = 16 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        if not is_regular_file(mode):
            return False
        parts = path.split("/")
        if len(parts) >= 3 and parts[-3] in _SITE_DIRS:
            container, base = parts[-2], parts[-1]
            return (container.endswith(".dist-info") and base == "METADATA") or (
                container.endswith(".egg-info") and base == "PKG-INFO"
            )
        return len(parts) >= 2 and parts[-2] in _SITE_DIRS and parts[-1].endswith(".egg-info")

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = decode_lenient(read_capped(file, self.max_file_size, self.name))
        entries = EntryLog(self.name, file.path)
        headers = _headers(text, entries)
        where = f"python: {file.path}"
        names = headers.get("name", [])
        versions = headers.get("version", [])
        if len(names) != 1 or len(versions) != 1:
            raise AnalyzerError(f"{where}: needs exactly one Name and one Version header")
        name, version = names[0].strip(), versions[0].strip()
        if not _NAME_RE.fullmatch(name):
            raise AnalyzerError(f"{where}: malformed Name {name!r}")
        if not _VERSION_RE.fullmatch(version):
            raise AnalyzerError(f"{where}: malformed Version {version!r}")
        normalized = normalize_name(name)
        package = Package(
            type=PackageType.PYPI,
            name=normalized,
            version=version,
            purl=make_purl(PackageType.PYPI, normalized, version),
            path=file.path,
            licenses=_licenses(headers),
        )
        return AnalyzerOutput(packages=(package,), warnings=entries.warnings())


def _headers(text: str, entries: EntryLog) -> dict[str, list[str]]:
    """Lower-cased header name -> values, in order, up to the first blank line.

    A line that is neither a header nor a continuation of one is skipped and noted.
    """
    headers: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            break
        if line[0] in " \t":
            if current is None:
                entries.skip(f"line {number}", "continuation without header")
            else:
                current[-1] += "\n" + line.strip()
            continue
        match = _HEADER_RE.fullmatch(line)
        if match is None:
            entries.skip(f"line {number}", "not a 'Header: value' line")
            current = None
            continue
        current = headers.setdefault(match.group(1).lower(), [])
        current.append(match.group(2).strip())
    return headers


def _licenses(headers: dict[str, list[str]]) -> tuple[str, ...]:
    expression = next((v for v in headers.get("license-expression", []) if v), "")
    if expression:
        return (clean_text(expression),)
    from_classifiers = tuple(
        clean_text(classifier.split(" :: ")[-1])
        for classifier in headers.get("classifier", [])
        if classifier.startswith("License :: ") and classifier != "License :: OSI Approved"
    )
    if from_classifiers:
        return from_classifiers
    license_field = next((v for v in headers.get("license", []) if v), "")
    if license_field and license_field != "UNKNOWN":
        return (clean_text(license_field),)
    return ()
