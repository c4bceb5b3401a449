"""Alpine (and Wolfi, Chainguard) packages: ``lib/apk/db/installed``.

The installed database (apk-tools; https://wiki.alpinelinux.org/wiki/Apk_spec) is a sequence
of records separated by blank lines; each line is ``<letter>:<value>``. We read ``P`` (name),
``V`` (version), ``A`` (architecture), ``o`` (origin: the aports source package that advisories
name) and ``L`` (licence).

Rules:

* A record without ``P`` or ``V`` is skipped (Trivy's fixture has a ``P`` without ``V``).
* A line that is not ``<letter>:<value>``, a second ``P``/``V`` in one record, or a malformed
  name/version is an ``AnalyzerError`` for the whole file.
* ``L`` is kept as written: a plain list (``MIT BSD GPL2+``) is split on whitespace; an SPDX
  expression with ``AND``/``OR``/``WITH`` or parentheses is kept whole as one licence.
  Trivy also maps non-SPDX names (``GPL2`` -> ``GPL-2.0-only``); we do not.
* A missing final newline is accepted: apk-tools accepts it, and Trivy's fixture lacks one.
"""

from __future__ import annotations

import logging
import re

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.textfile import clean_text, decode_lenient, is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

INSTALLED_DB = "lib/apk/db/installed"

_LINE_RE = re.compile(r"([A-Za-z]):(.*)")
# apk package names and versions (apk-tools src/version.c: digits, letters, '.', '_', '-r', ...)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION_RE = re.compile(r"[0-9][A-Za-z0-9._+~-]*")
_ARCH_RE = re.compile(r"[A-Za-z0-9_]+")
_SPDX_OPERATORS = re.compile(r"\b(?:AND|OR|WITH)\b|[()]")
# The fields we read may appear once per record.
_SINGLE_FIELDS = frozenset("PVAoL")


class ApkAnalyzer:
    name = "apk"
    version = 1
    max_file_size = 64 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        return path == INSTALLED_DB and is_regular_file(mode)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = decode_lenient(read_capped(file, self.max_file_size, self.name))
        packages: list[Package] = []
        record: dict[str, str] = {}
        start = 0
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.removesuffix("\r")
            if not line.strip():
                if record:
                    packages.extend(_package(record, file.path, start))
                    record = {}
                continue
            match = _LINE_RE.fullmatch(line)
            if match is None:
                raise AnalyzerError(f"apk: {file.path} line {number}: not a 'X:value' line")
            key, value = match.group(1), match.group(2)
            if key in _SINGLE_FIELDS:
                if key in record:
                    raise AnalyzerError(f"apk: {file.path} line {number}: second {key}: in record")
                if not record:
                    start = number
                record[key] = value.strip()
            elif not record:
                start = number
                record["_"] = ""  # a record has begun, even if its P: comes later
        if record:
            packages.extend(_package(record, file.path, start))
        return AnalyzerOutput(packages=tuple(packages))


def _package(record: dict[str, str], path: str, line: int) -> tuple[Package, ...]:
    name, version = record.get("P", ""), record.get("V", "")
    if not name or not version:
        logger.debug("apk: %s line %s: record without P or V", path, line)
        return ()
    where = f"apk: {path} line {line}"
    if not _NAME_RE.fullmatch(name):
        raise AnalyzerError(f"{where}: malformed package name {name!r}")
    if not _VERSION_RE.fullmatch(version):
        raise AnalyzerError(f"{where}: package {name}: malformed version {version!r}")
    arch = record.get("A", "")
    if arch and not _ARCH_RE.fullmatch(arch):
        raise AnalyzerError(f"{where}: package {name}: malformed architecture {arch!r}")
    origin = record.get("o", "") or name
    if not _NAME_RE.fullmatch(origin):
        raise AnalyzerError(f"{where}: package {name}: malformed origin {origin!r}")
    return (
        Package(
            type=PackageType.APK,
            name=name,
            version=version,
            purl=make_purl(PackageType.APK, name, version, qualifiers={"arch": arch}),
            path=path,
            source_name=origin,
            source_version=version,
            arch=arch,
            licenses=_licenses(record.get("L", "")),
        ),
    )


def _licenses(text: str) -> tuple[str, ...]:
    text = " ".join(clean_text(text).split())
    if not text:
        return ()
    if _SPDX_OPERATORS.search(text):
        return (text,)
    return tuple(text.split(" "))
