"""Debian packages: ``var/lib/dpkg/status`` and distroless ``var/lib/dpkg/status.d/*``.

The status file is a sequence of deb822 stanzas (Debian Policy §5.1): ``Field: value`` lines,
continuation lines starting with a space or tab, stanzas separated by blank lines. Distroless
images have no status file; each package's control stanza is a file in ``status.d`` (next to
``<name>.md5sums`` and maintainer scripts, which are skipped). A ``status.d`` stanza has no
``Status`` field; it counts as installed.

Rules (and where they differ from the reference tools):

* A stanza is reported when its package's files are on disk: the third word of ``Status``
  (dpkg(1) "package states") is one of ``installed``, ``half-installed``, ``unpacked``,
  ``half-configured``, ``triggers-awaited``, ``triggers-pending``. Trivy and Syft decide on
  the first word instead (skip ``deinstall``/``purge``): they drop ``deinstall ok installed``
  (still on disk, so we keep it) and keep ``install ok config-files`` (only conffiles left, so
  we drop it). For every status in the reference files both rules agree.
* A stanza without ``Status`` in the status file is not installed (dpkg's default).
* A stanza without ``Package`` or ``Version`` is not a package record (vcpkg feature stanzas,
  relationship placeholders in Syft's samples); it is skipped, as Trivy does.
* Anything dpkg itself would refuse is an ``AnalyzerError`` for the whole file, never a guess:
  a line that is neither a field nor a continuation, a duplicate field, a malformed
  ``Status``/``Package``/``Version``/``Source``, or a non-empty file whose last line has no
  newline (dpkg always ends the file with one, so this is a truncated copy).
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.textfile import decode_lenient, is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

STATUS_FILE = "var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d/"

# Files that sit beside the control stanzas in status.d (dpkg's info-file kinds, deb-*(5)).
_STATUS_D_SKIPPED_SUFFIXES = (
    ".md5sums",
    ".conffiles",
    ".list",
    ".preinst",
    ".postinst",
    ".prerm",
    ".postrm",
    ".config",
    ".templates",
    ".shlibs",
    ".symbols",
    ".triggers",
)

# dpkg(1) "package states" whose files are on disk.
_ON_DISK_STATES = frozenset(
    {
        "installed",
        "half-installed",
        "unpacked",
        "half-configured",
        "triggers-awaited",
        "triggers-pending",
    }
)
_OFF_DISK_STATES = frozenset({"not-installed", "config-files"})
_WANTS = frozenset({"unknown", "install", "hold", "deinstall", "purge"})
_FLAGS = frozenset({"ok", "reinstreq"})

# Field names: Policy §5.1 (printable ASCII, no colon, not starting with '#' or '-').
_FIELD_RE = re.compile(r"([!-9;-~]+)[ \t]*:(.*)")
# Package names (Policy §5.6.1), leniently: dpkg also accepts upper case and '_' when reading.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
# [epoch:]upstream[-revision] (Policy §5.6.12); a colon only after an epoch.
_VERSION_RE = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*(?::[A-Za-z0-9.+~-]+)*")
_ARCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_SOURCE_RE = re.compile(r"(?P<name>\S+)(?:\s+\((?P<version>[^()\s]+)\))?")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stanza:
    line: int  # 1-based line of its first field, for error messages
    fields: dict[str, str]  # lower-cased field name -> value (continuations joined by "\n")


class DpkgAnalyzer:
    name = "dpkg"
    version = 1
    max_file_size = 64 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        if not is_regular_file(mode):
            return False
        if path == STATUS_FILE:
            return True
        directory, base = posixpath.split(path)
        return (
            directory + "/" == STATUS_DIR
            and bool(base)
            and not base.startswith(".")
            and not base.endswith(_STATUS_D_SKIPPED_SUFFIXES)
        )

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = decode_lenient(read_capped(file, self.max_file_size, self.name))
        in_status_d = file.path.startswith(STATUS_DIR)
        packages = tuple(
            package
            for stanza in parse_stanzas(text, file.path)
            if (package := _package(stanza, file.path, in_status_d)) is not None
        )
        return AnalyzerOutput(packages=packages)


def parse_stanzas(text: str, path: str) -> Iterator[_Stanza]:
    """deb822 stanzas of ``text``; ``AnalyzerError`` on anything dpkg would refuse."""
    if text and not text.endswith("\n"):
        raise AnalyzerError(f"dpkg: {path} does not end with a newline: truncated")
    fields: dict[str, str] = {}
    start = 0
    current = ""
    for number, raw in enumerate(text.split("\n")[:-1] if text else (), start=1):
        line = raw.removesuffix("\r")
        if not line.strip(" \t"):
            if fields:
                yield _Stanza(line=start, fields=fields)
                fields, current = {}, ""
            continue
        if line[0] in " \t":
            if not current:
                raise AnalyzerError(f"dpkg: {path} line {number}: continuation line without field")
            fields[current] += "\n" + line.strip(" \t")
            continue
        if line.startswith("#"):
            continue  # Policy §5.1 allows comment lines in control files
        match = _FIELD_RE.fullmatch(line)
        if match is None:
            raise AnalyzerError(f"dpkg: {path} line {number}: not a 'Field: value' line")
        name = match.group(1).lower()
        if name in fields:
            raise AnalyzerError(f"dpkg: {path} line {number}: duplicate field {match.group(1)!r}")
        if not fields:
            start = number
        fields[name] = match.group(2).strip(" \t")
        current = name
    if fields:
        yield _Stanza(line=start, fields=fields)


def _on_disk(stanza: _Stanza, path: str, in_status_d: bool) -> bool:
    status = stanza.fields.get("status")
    if status is None:
        # status.d holds control files of installed packages; in the status file dpkg reads a
        # stanza without Status as "unknown ok not-installed" (lib/dpkg/parse.c defaults).
        return in_status_d
    words = status.split()
    if (
        len(words) != 3
        or words[0] not in _WANTS
        or words[1] not in _FLAGS
        or words[2] not in _ON_DISK_STATES | _OFF_DISK_STATES
    ):
        raise AnalyzerError(f"dpkg: {path} line {stanza.line}: malformed Status {status!r}")
    return words[2] in _ON_DISK_STATES


def _package(stanza: _Stanza, path: str, in_status_d: bool) -> Package | None:
    name = stanza.fields.get("package", "")
    version = stanza.fields.get("version", "")
    if not name or not version:
        logger.debug("dpkg: %s line %s: stanza without Package or Version", path, stanza.line)
        return None
    if not _on_disk(stanza, path, in_status_d):
        return None
    where = f"dpkg: {path} line {stanza.line}"
    if not _NAME_RE.fullmatch(name):
        raise AnalyzerError(f"{where}: malformed Package {name!r}")
    if not _VERSION_RE.fullmatch(version):
        raise AnalyzerError(f"{where}: package {name}: malformed Version {version!r}")
    arch = stanza.fields.get("architecture", "")
    if arch and not _ARCH_RE.fullmatch(arch):
        raise AnalyzerError(f"{where}: package {name}: malformed Architecture {arch!r}")
    source_name, source_version = name, version
    if source := stanza.fields.get("source", ""):
        match = _SOURCE_RE.fullmatch(source)
        if match is None or not _NAME_RE.fullmatch(match["name"]):
            raise AnalyzerError(f"{where}: package {name}: malformed Source {source!r}")
        source_name = match["name"]
        if match["version"]:
            if not _VERSION_RE.fullmatch(match["version"]):
                raise AnalyzerError(f"{where}: package {name}: malformed Source {source!r}")
            source_version = match["version"]
    return Package(
        type=PackageType.DPKG,
        name=name,
        version=version,
        purl=make_purl(PackageType.DPKG, name, version, qualifiers={"arch": arch}),
        path=path,
        source_name=source_name,
        source_version=source_version,
        arch=arch,
    )
