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
* A stanza without ``Package`` is not a package record (relationship placeholders in Syft's
  samples), nor is a vcpkg feature stanza (``Feature:``, no ``Version``); both are passed over,
  as Trivy does. An installed package without ``Version`` cannot be matched: it is skipped
  with a warning (Trivy drops it silently, Syft reports it with an empty version).
* A malformed stanza costs that stanza only: a line that is neither a field nor a continuation,
  a duplicate field, a malformed ``Status``/``Package``/``Version``/``Architecture``/``Source``
  skips it with a warning naming the line; the other stanzas stand (Trivy skips the same way).
* The file is read line by line, one stanza at a time, keeping only the fields we report, so
  memory is bounded by the number of packages, which ``MAX_DB_RECORDS`` caps
  (``scanning.analyzers.records``): past the cap the rest is not read, and a warning says so.
* Truncation: dpkg ends the file with a newline. A last line without one may hold a cut value,
  so that last stanza is skipped with a warning; a last stanza that ends with its newline but
  without a blank line is whole (dpkg reads it so, and ``status.d`` files end that way).
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterator

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.records import EntryLog, MalformedEntry
from scanning.analyzers.textfile import is_regular_file, iter_lines
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
# The fields a package is made of; every other field (Description, Depends...) is not kept.
_READ_FIELDS = frozenset({"package", "version", "status", "architecture", "source"})
_SOURCE_RE = re.compile(r"(?P<name>\S+)(?:\s+\((?P<version>[^()\s]+)\))?")


class _Stanza:
    """One stanza being read: the fields we report, each with its line, and its first problem."""

    __slots__ = ("fields", "line", "names", "problem")

    def __init__(self, line: int) -> None:
        self.line = line  # 1-based line of its first field, for warnings
        self.fields: dict[str, tuple[str, int]] = {}  # lower-cased name -> (value, line)
        self.names: set[str] = set()  # every field name seen, for duplicates
        self.problem: tuple[int, str] | None = None  # (line, what is wrong)

    def fail(self, line: int, reason: str) -> None:
        if self.problem is None:
            self.problem = (line, reason)

    def value(self, name: str) -> str:
        return self.fields.get(name, ("", 0))[0]


class DpkgAnalyzer:
    name = "dpkg"
    version = 2
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
        entries = EntryLog(self.name, file.path)
        in_status_d = file.path.startswith(STATUS_DIR)
        packages: list[Package] = []
        for stanza in _stanzas(file, self.max_file_size, entries):
            if stanza.problem is None:
                try:
                    package = _package(stanza, file.path, in_status_d)
                except MalformedEntry as problem:
                    stanza.problem = (problem.line, problem.reason)
                else:
                    if package is not None:
                        packages.append(package)
                    continue
            line, reason = stanza.problem
            entries.skip(f"line {line}", reason)
        return AnalyzerOutput(packages=tuple(packages), warnings=entries.warnings())


def _stanzas(file: AnalyzerInput, max_size: int, entries: EntryLog) -> Iterator[_Stanza]:
    """deb822 stanzas of ``file``, one at a time; problems are noted on the stanza."""
    stanza: _Stanza | None = None
    current = ""  # the field a continuation line continues
    for number, (raw, terminated) in enumerate(iter_lines(file, max_size, "dpkg"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip(" \t"):
            if stanza is not None:
                yield stanza
                stanza, current = None, ""
            continue
        if stanza is None:
            if not entries.admit():
                return
            stanza = _Stanza(number)
        if not terminated:
            stanza.fail(number, "the file ends inside this line (truncated)")
        if line[0] in " \t":
            if not current:
                stanza.fail(number, "continuation line without field")
            elif current in _READ_FIELDS:
                # The fields we report are simple, one-line fields (Policy §5.1); the text of
                # other fields is never kept, so a long description costs nothing.
                stanza.fail(number, f"continuation line in the single-line field {current!r}")
            continue
        if line.startswith("#"):
            continue  # Policy §5.1 allows comment lines in control files
        match = _FIELD_RE.fullmatch(line)
        if match is None:
            stanza.fail(number, "not a 'Field: value' line")
            current = ""
            continue
        name = match.group(1).lower()
        if name in stanza.names:
            stanza.fail(number, f"duplicate field {match.group(1)!r}")
        stanza.names.add(name)
        current = name
        # Only the fields we report are kept: a stanza's free text is never held.
        if name in _READ_FIELDS and name not in stanza.fields:
            stanza.fields[name] = (match.group(2).strip(" \t"), number)
    if stanza is not None:
        yield stanza


def _on_disk(stanza: _Stanza, in_status_d: bool) -> bool:
    if "status" not in stanza.fields:
        # status.d holds control files of installed packages; in the status file dpkg reads a
        # stanza without Status as "unknown ok not-installed" (lib/dpkg/parse.c defaults).
        return in_status_d
    status, line = stanza.fields["status"]
    words = status.split()
    if (
        len(words) != 3
        or words[0] not in _WANTS
        or words[1] not in _FLAGS
        or words[2] not in _ON_DISK_STATES | _OFF_DISK_STATES
    ):
        raise MalformedEntry(line, f"malformed Status {status!r}")
    return words[2] in _ON_DISK_STATES


def _package(stanza: _Stanza, path: str, in_status_d: bool) -> Package | None:
    name, version = stanza.value("package"), stanza.value("version")
    if not name:
        logger.debug("dpkg: %s line %s: stanza without Package", path, stanza.line)
        return None
    if not version:
        # vcpkg's feature stanzas have no Version and are not packages; an installed package
        # without one cannot be matched, and must not vanish unseen.
        if "feature" in stanza.names or not _on_disk(stanza, in_status_d):
            return None
        raise MalformedEntry(stanza.line, f"package {name} is installed but has no Version")
    if not _on_disk(stanza, in_status_d):
        return None
    if not _NAME_RE.fullmatch(name):
        raise MalformedEntry(stanza.fields["package"][1], f"malformed Package {name!r}")
    version_line = stanza.fields["version"][1]
    if not _VERSION_RE.fullmatch(version):
        raise MalformedEntry(version_line, f"package {name}: malformed Version {version!r}")
    arch = stanza.value("architecture")
    if arch and not _ARCH_RE.fullmatch(arch):
        raise MalformedEntry(stanza.fields["architecture"][1],
                         f"package {name}: malformed Architecture {arch!r}")
    source_name, source_version = name, version
    if source := stanza.value("source"):
        source_line = stanza.fields["source"][1]
        match = _SOURCE_RE.fullmatch(source)
        if match is None or not _NAME_RE.fullmatch(match["name"]):
            raise MalformedEntry(source_line, f"package {name}: malformed Source {source!r}")
        source_name = match["name"]
        if match["version"]:
            if not _VERSION_RE.fullmatch(match["version"]):
                raise MalformedEntry(source_line, f"package {name}: malformed Source {source!r}")
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
