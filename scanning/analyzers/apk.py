"""Alpine (and Wolfi, Chainguard) packages: ``lib/apk/db/installed``.

The installed database (apk-tools; https://wiki.alpinelinux.org/wiki/Apk_spec) is a sequence
of records separated by blank lines; each line is ``<letter>:<value>``. We read ``P`` (name),
``V`` (version), ``A`` (architecture), ``o`` (origin: the aports source package that advisories
name) and ``L`` (licence).

Rules:

* The file is read line by line and one record at a time, so memory is bounded by the number
  of packages, which ``MAX_DB_RECORDS`` caps (``scanning.analyzers.records``): past the cap the
  rest is not read, and a warning says so.
* A malformed record costs that record only: a line that is not ``<letter>:<value>``, a second
  ``P``/``V``/``A``/``o``/``L`` in one record, a malformed name/version/architecture/origin, or
  a record without ``P`` or ``V`` (Trivy's fixture has a ``P`` without ``V``) is skipped with a
  warning naming the line; the other records stand.
* ``L`` is kept as written: a plain list (``MIT BSD GPL2+``) is split on whitespace; an SPDX
  expression with ``AND``/``OR``/``WITH`` or parentheses is kept whole as one licence.
  Trivy also maps non-SPDX names (``GPL2`` -> ``GPL-2.0-only``); we do not.
* Truncation: apk-tools ends every record with a blank line. A last record without one is
  still read (apk-tools reads it too, and the reference tools' fixtures end that way): apk-tools
  writes the fields we read before the record's file list (``F``/``R``/``Z`` lines), so a copy
  cut inside the file list lost nothing we report. A file that ends inside a field we read (its
  last line has no newline) may hold a cut value: that record is skipped with a warning.
"""

from __future__ import annotations

import re

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.records import EntryLog, MalformedEntry
from scanning.analyzers.textfile import clean_text, is_regular_file, iter_lines
from scanning.model import Package, PackageType

INSTALLED_DB = "lib/apk/db/installed"

# apk package names and versions (apk-tools src/version.c: digits, letters, '.', '_', '-r', ...)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION_RE = re.compile(r"[0-9][A-Za-z0-9._+~-]*")
_ARCH_RE = re.compile(r"[A-Za-z0-9_]+")
_SPDX_OPERATORS = re.compile(r"\b(?:AND|OR|WITH)\b|[()]")
# The fields we read may appear once per record.
_SINGLE_FIELDS = frozenset("PVAoL")


class _Record:
    """One record being read: the fields we use, each with its line, and its first problem."""

    __slots__ = ("fields", "line", "problem")

    def __init__(self, line: int) -> None:
        self.line = line
        self.fields: dict[str, tuple[str, int]] = {}  # letter -> (value, line)
        self.problem: tuple[int, str] | None = None  # (line, what is wrong)

    def fail(self, line: int, reason: str) -> None:
        if self.problem is None:
            self.problem = (line, reason)


class ApkAnalyzer:
    name = "apk"
    version = 2
    max_file_size = 64 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        return path == INSTALLED_DB and is_regular_file(mode)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        entries = EntryLog(self.name, file.path)
        packages: list[Package] = []
        record: _Record | None = None
        last_key, last_terminated = "", True
        for number, (raw, terminated) in enumerate(
            iter_lines(file, self.max_file_size, self.name), start=1
        ):
            line = raw.removesuffix("\r")
            last_key, last_terminated = "", terminated
            if not line.strip():
                if record is not None:
                    _finish(record, packages, entries)
                    record = None
                continue
            if record is None:
                if not entries.admit():
                    break
                record = _Record(number)
            # "<letter>:<value>", checked without a regex: most lines are file entries.
            key = line[0]
            if line[1:2] != ":" or not (key.isascii() and key.isalpha()):
                record.fail(number, "not a 'X:value' line")
                continue
            last_key = key
            if key not in _SINGLE_FIELDS:
                continue
            if key in record.fields:
                record.fail(number, f"second {key}: in record")
                continue
            record.fields[key] = (line[2:].strip(), number)
        if record is not None and not entries.capped:
            if not last_terminated and last_key in _SINGLE_FIELDS:
                entries.skip(
                    f"line {record.fields[last_key][1]}",
                    f"the file ends inside this {last_key}: line (truncated)",
                )
            else:
                _finish(record, packages, entries)
        return AnalyzerOutput(packages=tuple(packages), warnings=entries.warnings())


def _finish(record: _Record, packages: list[Package], entries: EntryLog) -> None:
    if record.problem is None:
        try:
            packages.append(_package(record, entries.path))
            return
        except MalformedEntry as problem:
            record.problem = (problem.line, problem.reason)
    line, reason = record.problem
    entries.skip(f"line {line}", reason)


def _package(record: _Record, path: str) -> Package:
    fields = record.fields
    name, name_line = fields.get("P", ("", record.line))
    version, version_line = fields.get("V", ("", record.line))
    if not name or not version:
        raise MalformedEntry(record.line, "record without P: or V:")
    if not _NAME_RE.fullmatch(name):
        raise MalformedEntry(name_line, f"malformed package name {name!r}")
    if not _VERSION_RE.fullmatch(version):
        raise MalformedEntry(version_line, f"package {name}: malformed version {version!r}")
    arch, arch_line = fields.get("A", ("", 0))
    if arch and not _ARCH_RE.fullmatch(arch):
        raise MalformedEntry(arch_line, f"package {name}: malformed architecture {arch!r}")
    origin, origin_line = fields.get("o", ("", 0))
    origin = origin or name
    if not _NAME_RE.fullmatch(origin):
        raise MalformedEntry(origin_line, f"package {name}: malformed origin {origin!r}")
    return Package(
        type=PackageType.APK,
        name=name,
        version=version,
        purl=make_purl(PackageType.APK, name, version, qualifiers={"arch": arch}),
        path=path,
        source_name=origin,
        source_version=version,
        arch=arch,
        licenses=_licenses(fields.get("L", ("", 0))[0]),
    )


def _licenses(text: str) -> tuple[str, ...]:
    text = " ".join(clean_text(text).split())
    if not text:
        return ()
    if _SPDX_OPERATORS.search(text):
        return (text,)
    return tuple(text.split(" "))
