"""Data shared by every layer of the scanner: packages, OS, findings and their closed sets.

Frozen, slotted, keyword-only dataclasses with tuples inside, so results can be cached,
compared and hashed. ``to_json``/``from_json`` helpers live next to the code that stores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class PackageType(StrEnum):
    """Where a package was found; with the OS this decides the OSV ecosystem to match in."""

    DPKG = "deb"
    APK = "apk"
    RPM = "rpm"
    PYPI = "pypi"
    NPM = "npm"
    GOLANG = "golang"
    MAVEN = "maven"
    NUGET = "nuget"

    # Enum's own __hash__ is Python code (``hash(self._name_)``); the matcher hashes a package
    # type several times per package of every re-match. A str enum member equals its value,
    # so hashing as that str is both C-speed and consistent with that equality.
    __hash__ = str.__hash__

    @property
    def is_os(self) -> bool:
        return self in OS_PACKAGE_TYPES


OS_PACKAGE_TYPES = frozenset({PackageType.DPKG, PackageType.APK, PackageType.RPM})
# Value -> member as a plain dict lookup: ``PackageType(value)`` runs Enum's Python __new__
# (a rescan decodes hundreds of packages per image).
PACKAGE_TYPES_BY_VALUE = {member.value: member for member in PackageType}


class Severity(Enum):
    """Ordered: compare with ``.rank`` (``UNKNOWN`` sorts lowest)."""

    UNKNOWN = "unknown"
    NEGLIGIBLE = "negligible"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    # Members are singletons compared by identity: the C identity hash, not Enum's Python one.
    __hash__ = object.__hash__

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            return cls.UNKNOWN


_SEVERITY_ORDER = (
    Severity.UNKNOWN,
    Severity.NEGLIGIBLE,
    Severity.LOW,
    Severity.MEDIUM,
    Severity.HIGH,
    Severity.CRITICAL,
)
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(_SEVERITY_ORDER)}


class FixStatus(StrEnum):
    __hash__ = str.__hash__  # as PackageType's

    FIXED = "fixed"
    NOT_FIXED = "not_fixed"
    WONT_FIX = "wont_fix"
    UNIMPORTANT = "unimportant"
    END_OF_LIFE = "end_of_life"
    UNKNOWN = "unknown"


class AssessmentStatus(StrEnum):
    __hash__ = str.__hash__  # as PackageType's

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNSUPPORTED = "unsupported"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"
    PARTIAL = "partial"


class ScanState(StrEnum):
    """Where an image's scan is before its assessment: what the API shows as the status of an
    image not assessed yet. Kept apart from ``AssessmentStatus``: it says nothing about the
    image's content, and every reader of an assessment may keep treating "no status" as "not
    assessed"."""

    QUEUED = "queued"  # the push was seen and the scan started, nothing run yet
    SCANNING = "scanning"  # the scan is reading the image


@dataclass(frozen=True, slots=True, kw_only=True)
class OSInfo:
    """What os-release (or an older release file) says. ``id`` is os-release ``ID``."""

    id: str
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""
    # The distribution branch advisories are matched against when it is not VERSION_ID's:
    # Alpine's newest ``vX.Y`` (or ``edge``) in etc/apk/repositories. Empty: VERSION_ID's.
    branch: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """One installed package.

    ``version`` is the full version as the ecosystem writes it (dpkg ``epoch:upstream-rev``,
    rpm ``epoch:version-release`` with the epoch only when set, apk ``1.2.3-r4``).
    ``source_name``/``source_version`` are the distro source package (dpkg ``Source:``, apk
    origin, rpm source rpm); they default to the binary package's own.
    """

    type: PackageType
    name: str
    version: str
    purl: str
    path: str
    source_name: str = ""
    source_version: str = ""
    arch: str = ""
    layer_digest: str = ""
    layer_instruction: str = ""
    licenses: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return self.source_name or self.name

    @property
    def source_ver(self) -> str:
        return self.source_version or self.version


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be OS/ARCH[/VARIANT], got {text!r}")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class CvssScore:
    version: str  # "2.0", "3.0", "3.1", "4.0"
    vector: str
    base_score: float
    severity: Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchDetail:
    """How a finding was matched, so it can be explained."""

    ecosystem: str
    searched_name: str
    searched_version: str
    range: str  # e.g. "introduced 0, fixed 1.2.3" or "versions list"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    package: str
    installed_version: str
    package_type: PackageType
    purl: str
    source_package: str
    fixed_version: str
    fix_status: FixStatus
    severity: Severity
    vendor_severity: str
    cvss: tuple[CvssScore, ...]
    remediation: str
    summary: str
    description: str
    published: str
    modified: str
    references: tuple[str, ...]
    layer_digest: str
    layer_instruction: str
    path: str
    match: MatchDetail
    disabled_by: str = ""  # id of the disable rule that hides it, if any
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class ScanTrigger(StrEnum):
    """Why a scan ran; billing depends on it (first scans are billed, rescans never)."""

    PUSH = "push"
    IMPORT = "import"
    RESCAN = "rescan"
    MANUAL = "manual"
    CATCHUP = "catchup"


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingCounts:
    """Findings per severity, active and disabled; every severity is present (zero-filled)."""

    active: dict[Severity, int] = field(default_factory=dict, hash=False)
    disabled: dict[Severity, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for severity in Severity:
            self.active.setdefault(severity, 0)
            self.disabled.setdefault(severity, 0)

    @property
    def active_total(self) -> int:
        return sum(self.active.values())

    @property
    def disabled_total(self) -> int:
        return sum(self.disabled.values())


def count_findings(findings: Iterable[Finding]) -> FindingCounts:
    active = dict.fromkeys(Severity, 0)
    disabled = dict.fromkeys(Severity, 0)
    for finding in findings:
        (disabled if finding.disabled_by else active)[finding.severity] += 1
    return FindingCounts(active=active, disabled=disabled)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformFindings:
    """One platform of an assessed image: its findings (``disabled_by`` set by the rules in
    force) and its verdict. ``analysis`` is what the scan concluded before rules (None in
    documents written before it was kept per platform); ``status`` is the verdict with rules
    applied, as ``scanning.assessment`` decides it."""

    platform: str
    findings: tuple[Finding, ...]
    manifest_digest: str = ""
    os: OSInfo | None = None
    analysis: AssessmentStatus | None = None
    status: AssessmentStatus | None = None
    reason: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessmentSummary:
    """What a notification compares: the status and the active findings' keys."""

    status: AssessmentStatus
    active_finding_keys: frozenset[str]


def finding_key(finding: Finding) -> str:
    return f"{finding.id}|{finding.package}|{finding.installed_version}"


# JSON codec of packages and OS, shared by stored inventories and layer results.


def package_to_json(package: Package) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": package.type.value,
        "name": package.name,
        "version": package.version,
        "purl": package.purl,
        "path": package.path,
    }
    # Optional fields only when set: keeps stored inventories small and stable.
    for name in ("source_name", "source_version", "arch", "layer_digest", "layer_instruction"):
        value = getattr(package, name)
        if value:
            data[name] = value
    if package.licenses:
        data["licenses"] = list(package.licenses)
    return data


def package_from_json(data: Mapping[str, Any]) -> Package:
    """The package of ``package_to_json``'s dict (KeyError for a missing required field,
    ValueError for an unknown type).

    Filled slot by slot rather than through the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` call per field): a rescan reads 300 packages for every image it
    re-matches, and this takes ~40% less time per package."""
    kind = data["type"]
    member = PACKAGE_TYPES_BY_VALUE.get(kind) if type(kind) is str else None
    get = data.get
    package = _new_package(Package)
    _set_type(package, member or PackageType(kind))
    _set_name(package, data["name"])
    _set_version(package, data["version"])
    _set_purl(package, data["purl"])
    _set_path(package, data["path"])
    _set_source_name(package, get("source_name", ""))
    _set_source_version(package, get("source_version", ""))
    _set_arch(package, get("arch", ""))
    _set_layer_digest(package, get("layer_digest", ""))
    _set_layer_instruction(package, get("layer_instruction", ""))
    _set_licenses(package, tuple(get("licenses", ())))
    return package


_new_package = object.__new__
(_set_type, _set_name, _set_version, _set_purl, _set_path, _set_source_name, _set_source_version,
 _set_arch, _set_layer_digest, _set_layer_instruction, _set_licenses) = (
    vars(Package)[name].__set__ for name in (
        "type", "name", "version", "purl", "path", "source_name", "source_version", "arch",
        "layer_digest", "layer_instruction", "licenses"))


def os_to_json(os_info: OSInfo | None) -> dict[str, str] | None:
    if os_info is None:
        return None
    data = dataclasses.asdict(os_info)
    if not os_info.branch:
        del data["branch"]  # optional: the JSON of an OS without one stays as it was
    return data


def os_from_json(data: Mapping[str, str] | None) -> OSInfo | None:
    return None if data is None else OSInfo(**data)
