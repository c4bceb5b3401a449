"""The distribution: os-release and the older, distribution-specific release files.

One ``OSInfo`` per file; ``best_os`` chooses among the files an image has. Precedence:
``etc/os-release`` > ``usr/lib/os-release`` (distroless ships only this one) > the specific
files in ``SPECIFIC_FILES`` order (most specific first: Rocky, Alma, Oracle and CentOS also
ship a ``redhat-release``; Ubuntu also ships ``debian_version``). One merge: Debian testing and
sid have no ``VERSION_ID`` in os-release, so ``etc/debian_version`` (``trixie/sid``) supplies it.

Formats:

* os-release(5) (freedesktop.org): ``KEY=value`` lines, values optionally in single or double
  quotes, with ``\\``-escapes inside double quotes; ``#`` comments. We use ``ID``, ``VERSION_ID``,
  ``VERSION_CODENAME`` (else ``UBUNTU_CODENAME``) and ``PRETTY_NAME``. A line that is not
  an assignment or whose quotes do not close is skipped with a warning naming it; a file
  without ``ID`` is an ``AnalyzerError``.
* ``etc/alpine-release``: the version (``3.10.4``).
* ``etc/debian_version``: the version (``10.3``) or ``<codename>/sid`` on testing and sid.
* ``etc/lsb-release``: ``DISTRIB_ID``, ``DISTRIB_RELEASE``, ``DISTRIB_CODENAME``,
  ``DISTRIB_DESCRIPTION`` in os-release syntax.
* ``etc/redhat-release`` and relatives: ``<name> release <version> (<codename>)``; ``<name>``
  maps to the os-release ID the distribution uses (``Red Hat Enterprise Linux`` -> ``rhel``).
  An unknown name gives no OS (not a guessed id).
* ``etc/mariner-release``: ``CBL-Mariner 2.0.20220226`` -> ``mariner`` ``2.0``.
* ``etc/SuSE-release``: a title line, then ``VERSION = 12`` and ``PATCHLEVEL = 3`` -> ``12.3``.

The Alpine branch: ``etc/apk/repositories`` lists one repository URL a line
(``https://dl-cdn.alpinelinux.org/alpine/v3.12/main``; apk-repositories(5)). An image built on
3.10 that upgraded from v3.12 repositories holds 3.12 packages while VERSION_ID may still say
3.10 (alpine-release belongs to the alpine-base package, which not every upgrade touches).
So when the newest ``vX.Y`` in the file is newer than VERSION_ID's, or a repository is
``edge``, that branch is the one advisories are matched against (``OSInfo.branch``; ``edge`` is
resolved to the newest branch the advisory index has when matching). Lines tagged ``@name``
are skipped: apk installs from a tagged repository only the packages asked for by that tag, so
they do not say what the rest of the system is; comments, blank lines and URLs without a branch
(local mirrors, ``/media/cdrom/apks``) are skipped too.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.records import EntryLog
from scanning.analyzers.textfile import clean_text, decode_lenient, is_regular_file, read_capped
from scanning.errors import AnalyzerError
from scanning.model import OSInfo

logger = logging.getLogger(__name__)

ETC_OS_RELEASE = "etc/os-release"
USR_LIB_OS_RELEASE = "usr/lib/os-release"
DEBIAN_VERSION = "etc/debian_version"
APK_REPOSITORIES = "etc/apk/repositories"
# Distribution-specific files, most specific first (see module docstring).
SPECIFIC_FILES = (
    "etc/alpine-release",
    "etc/mariner-release",
    "etc/SuSE-release",
    "etc/rocky-release",
    "etc/almalinux-release",
    "etc/oracle-release",
    "etc/fedora-release",
    "etc/centos-release",
    "etc/redhat-release",
    "etc/system-release",
    "etc/lsb-release",
    DEBIAN_VERSION,
)
PRECEDENCE = (ETC_OS_RELEASE, USR_LIB_OS_RELEASE, *SPECIFIC_FILES)

_ASSIGNMENT_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_DOUBLE_QUOTED_ESCAPE_RE = re.compile(r"\\([$\"\\`])")
# "<name> release <version> [(<codename>)]" (redhat-release and its relatives).
_RELEASE_LINE_RE = re.compile(
    r"(?P<name>.+?) release (?P<version>[0-9][0-9.]*)(?: \((?P<codename>[^)]*)\))?"
)
_MARINER_RE = re.compile(r"CBL-Mariner (?P<major_minor>[0-9]+\.[0-9]+)(?:\.[0-9]+)?")
_SUSE_KEY_RE = re.compile(r"(VERSION|PATCHLEVEL|CODENAME)\s*=\s*(\S.*)")
_PLAIN_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~/-]*")
# The branch part of an Alpine repository URL: ".../v3.12/main" or ".../edge/community".
_APK_BRANCH_RE = re.compile(r"/(v[0-9]+\.[0-9]+|edge)/[^/]+/?$")
EDGE = "edge"

# Distribution names in redhat-release-style files -> os-release ID of that distribution.
_RELEASE_NAME_TO_ID = (
    ("Red Hat Enterprise Linux", "rhel"),
    ("CentOS Stream", "centos"),
    ("CentOS", "centos"),
    ("Rocky Linux", "rocky"),
    ("AlmaLinux", "almalinux"),
    ("Oracle Linux", "ol"),
    ("Fedora", "fedora"),
    ("Amazon Linux", "amzn"),
)


class OSReleaseAnalyzer:
    name = "os-release"
    version = 2
    max_file_size = 64 * 1024

    def required(self, path: str, mode: int) -> bool:
        return (path in PRECEDENCE or path == APK_REPOSITORIES) and is_regular_file(mode)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = decode_lenient(read_capped(file, self.max_file_size, self.name))
        entries = EntryLog(self.name, file.path)
        found = parse_release_file(file.path, text, entries)
        return AnalyzerOutput(os=found, warnings=entries.warnings())


def parse_release_file(path: str, text: str, entries: EntryLog) -> OSInfo | None:
    """The OS ``text`` (the content of ``path``) names; ``None`` for an unknown distribution.

    Lines of os-release syntax that cannot be read are skipped and noted in ``entries``.
    """
    if path in (ETC_OS_RELEASE, USR_LIB_OS_RELEASE):
        return _os_release(path, text, entries)
    if path == APK_REPOSITORIES:
        branch = newest_apk_branch(text)
        return OSInfo(id="alpine", branch=branch) if branch else None
    if path == "etc/lsb-release":
        return _lsb_release(path, text, entries)
    if path == "etc/alpine-release":
        return OSInfo(id="alpine", version_id=_single_version(path, text))
    if path == DEBIAN_VERSION:
        return OSInfo(id="debian", version_id=_single_version(path, text))
    if path == "etc/mariner-release":
        match = _MARINER_RE.match(text.strip())
        if match is None:
            raise AnalyzerError(f"os-release: {path}: not 'CBL-Mariner <version>'")
        return OSInfo(id="mariner", version_id=match["major_minor"])
    if path == "etc/SuSE-release":
        return _suse_release(path, text)
    return _release_line(path, text)


def best_os(found: Mapping[str, OSInfo]) -> OSInfo | None:
    """The image's OS from the release files found (path -> what each says), by precedence."""
    chosen_path = next((path for path in PRECEDENCE if path in found), None)
    if chosen_path is None:
        return None
    chosen = found[chosen_path]
    repositories = found.get(APK_REPOSITORIES)
    if chosen.id == "alpine" and repositories is not None:
        branch = repositories.branch
        if branch == EDGE or _branch_key(branch) > _branch_key(_version_branch(chosen)):
            return dataclasses.replace(chosen, branch=branch)
        return chosen
    debian_version = found.get(DEBIAN_VERSION)
    if chosen.id == "debian" and not chosen.version_id and debian_version is not None:
        return OSInfo(
            id=chosen.id,
            version_id=debian_version.version_id,
            codename=chosen.codename,
            pretty_name=chosen.pretty_name,
        )
    return chosen


def newest_apk_branch(text: str) -> str:
    """The newest branch ``etc/apk/repositories`` names (``edge`` above all); "" for none."""
    branches = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        match = _APK_BRANCH_RE.search(line.split()[0])
        if match is not None:
            branches.append(match.group(1))
    if EDGE in branches:
        return EDGE
    return max(branches, key=_branch_key, default="")


def _version_branch(os_info: OSInfo) -> str:
    """``3.10.4`` -> ``v3.10``."""
    return "v" + ".".join(os_info.version_id.split(".")[:2])


def _branch_key(branch: str) -> tuple[int, ...]:
    """``v3.12`` -> (3, 12); anything else sorts lowest."""
    parts = branch.removeprefix("v").split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else ()


def parse_assignments(text: str, entries: EntryLog) -> dict[str, str]:
    """os-release(5) syntax: ``KEY=value`` lines, quoting and escapes as a shell would.

    A line that is not an assignment, or whose quotes do not close, is skipped and noted.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT_RE.fullmatch(line)
        if match is None:
            entries.skip(f"line {number}", "not a KEY=value assignment")
            continue
        value = _unquote(match.group(2))
        if value is None:
            entries.skip(f"line {number}", f"unbalanced quotes in {match.group(1)}")
            continue
        values[match.group(1)] = value
    return values


def _unquote(value: str) -> str | None:
    if value[:1] in ("'", '"'):
        quote = value[0]
        if len(value) < 2 or value[-1] != quote:
            return None
        inner = value[1:-1]
        return _DOUBLE_QUOTED_ESCAPE_RE.sub(r"\1", inner) if quote == '"' else inner
    return value


def _os_release(path: str, text: str, entries: EntryLog) -> OSInfo:
    values = parse_assignments(text, entries)
    os_id = values.get("ID", "").strip().lower()
    if not os_id:
        raise AnalyzerError(f"os-release: {path}: no ID")
    return OSInfo(
        id=clean_text(os_id),
        version_id=clean_text(values.get("VERSION_ID", "").strip()),
        codename=clean_text(
            (values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or "").strip()
        ),
        pretty_name=clean_text(values.get("PRETTY_NAME", "").strip()),
    )


def _lsb_release(path: str, text: str, entries: EntryLog) -> OSInfo:
    values = parse_assignments(text, entries)
    os_id = values.get("DISTRIB_ID", "").strip().lower()
    if not os_id:
        raise AnalyzerError(f"os-release: {path}: no DISTRIB_ID")
    return OSInfo(
        id=clean_text(os_id),
        version_id=clean_text(values.get("DISTRIB_RELEASE", "").strip()),
        codename=clean_text(values.get("DISTRIB_CODENAME", "").strip()),
        pretty_name=clean_text(values.get("DISTRIB_DESCRIPTION", "").strip()),
    )


def _single_version(path: str, text: str) -> str:
    version = text.strip()
    if not _PLAIN_VERSION_RE.fullmatch(version):
        raise AnalyzerError(f"os-release: {path}: not a version: {clean_text(version[:80])!r}")
    return version


def _release_line(path: str, text: str) -> OSInfo | None:
    first_line = text.strip().split("\n", 1)[0].strip()
    match = _RELEASE_LINE_RE.fullmatch(first_line)
    if match is None:
        raise AnalyzerError(f"os-release: {path}: not '<name> release <version> (<codename>)'")
    name = match["name"]
    os_id = next((i for prefix, i in _RELEASE_NAME_TO_ID if name.startswith(prefix)), None)
    if os_id is None:
        logger.info("os-release: %s names an unknown distribution %r", path, clean_text(name))
        return None
    return OSInfo(
        id=os_id,
        version_id=match["version"],
        codename=clean_text(match["codename"] or ""),
        pretty_name=clean_text(first_line),
    )


def _suse_release(path: str, text: str) -> OSInfo:
    lines = text.strip().split("\n")
    title = lines[0].strip()
    values = {
        match.group(1): match.group(2).strip()
        for line in lines[1:]
        if (match := _SUSE_KEY_RE.fullmatch(line.strip()))
    }
    version = values.get("VERSION", "")
    if not version or not _PLAIN_VERSION_RE.fullmatch(version):
        raise AnalyzerError(f"os-release: {path}: no VERSION = <version> line")
    patch_level = values.get("PATCHLEVEL", "0")
    if not patch_level.isdigit():
        raise AnalyzerError(f"os-release: {path}: malformed PATCHLEVEL")
    if patch_level != "0":
        version = f"{version}.{patch_level}"
    os_id = "opensuse" if title.lower().startswith("opensuse") else "sles"
    return OSInfo(
        id=os_id,
        version_id=version,
        codename=clean_text(values.get("CODENAME", "")),
        pretty_name=clean_text(title),
    )
