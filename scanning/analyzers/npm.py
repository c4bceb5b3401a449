"""Installed npm packages: ``node_modules/<name>/package.json``.

Only the manifest of an installed package counts: the file must be directly
``node_modules/<name>/package.json`` or ``node_modules/@scope/<name>/package.json`` (at any
depth, so nested ``node_modules`` are found). Other ``package.json`` files (an application's
own, ``node_modules/x/lib/package.json`` markers, ``node_modules/.bin``) are not packages.
Lockfiles are not read: they say what was meant to be installed, not what is.

Rules: invalid JSON, JSON nested deeper than ``MAX_JSON_DEPTH``, a top level that is not an
object, or ``name``/``version`` that are not strings are an ``AnalyzerError``. A manifest with
no ``name`` or no ``version`` (a private or placeholder package) gives no package.
Licences come from ``license`` (a string, or the legacy ``{"type": ...}``) or the legacy
``licenses`` list.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.textfile import is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 64
_NAME_RE = re.compile(r"(?:@[A-Za-z0-9~._-]+/)?[A-Za-z0-9~._-]+")
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")


class NpmAnalyzer:
    name = "npm"
    version = 1
    max_file_size = 8 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        if not is_regular_file(mode):
            return False
        parts = path.split("/")
        if len(parts) < 3 or parts[-1] != "package.json" or parts[-2].startswith((".", "@")):
            return False
        if parts[-3] == "node_modules":
            return True
        return len(parts) >= 4 and parts[-4] == "node_modules" and _is_scope(parts[-3])

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        data = read_capped(file, self.max_file_size, self.name)
        where = f"npm: {file.path}"
        manifest = load_json_object(data, where)
        name, version = manifest.get("name"), manifest.get("version")
        if name is None or version is None or name == "" or version == "":
            logger.debug("%s: no name or version, not an installed package", where)
            return AnalyzerOutput()
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise AnalyzerError(f"{where}: malformed name {name!r}")
        if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
            raise AnalyzerError(f"{where}: malformed version {version!r}")
        scope, _, bare = name.rpartition("/")
        package = Package(
            type=PackageType.NPM,
            name=name,
            version=version,
            purl=make_purl(PackageType.NPM, bare, version, namespace=scope),
            path=file.path,
            licenses=_licenses(manifest),
        )
        return AnalyzerOutput(packages=(package,))


def _is_scope(part: str) -> bool:
    return len(part) > 1 and part.startswith("@")


def load_json_object(data: bytes, where: str) -> dict[str, Any]:
    """A JSON document whose top level is an object, nested at most ``MAX_JSON_DEPTH`` deep;
    ``AnalyzerError`` naming ``where`` (and the decoder's line and column) otherwise."""
    try:
        # The C decoder guards its own recursion (RecursionError past ~1000 levels).
        document = json.loads(data)
    except RecursionError as error:
        raise AnalyzerError(f"{where}: JSON nested too deep") from error
    except ValueError as error:
        raise AnalyzerError(f"{where}: not valid JSON: {error}") from error
    _check_depth(document, where)
    if not isinstance(document, dict):
        raise AnalyzerError(f"{where}: top level is not a JSON object")
    return document


def _check_depth(document: object, where: str) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH`` (walked without recursion)."""
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise AnalyzerError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH}")
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def _licenses(manifest: dict[str, Any]) -> tuple[str, ...]:
    declared = manifest.get("license")
    if isinstance(declared, str) and declared:
        return (declared,)
    if isinstance(declared, dict) and isinstance(declared.get("type"), str):
        return (declared["type"],)
    legacy = manifest.get("licenses")
    if isinstance(legacy, list):
        return tuple(
            entry["type"] if isinstance(entry, dict) else entry
            for entry in legacy
            if (isinstance(entry, dict) and isinstance(entry.get("type"), str) and entry["type"])
            or (isinstance(entry, str) and entry)
        )
    return ()
