"""Match an image inventory against the advisory index: packages x advisories -> findings.

A pure function (``match_inventory``) over the analysed OS, the packages and a loaded
``AdvisoryIndex``: no I/O, so the scan command, the assess activity and the weekly re-match all
call it the same way, and tests feed it plain values.

Where each package is looked up (the OSV schema's "Defined ecosystems" and how each distro
publishes advisories):

* dpkg packages by their **source** package and source version in ``Debian:<major>`` or
  ``Ubuntu:<release>[:LTS]`` (Debian's and Ubuntu's OSV ranges are on source versions), and
  for Ubuntu LTS releases also in ``Ubuntu:Pro:<release>:LTS``, where fixes that only ship to
  Ubuntu Pro subscribers are published;
* apk packages by origin in ``Alpine:v<major.minor>``, ``Wolfi``, ``Chainguard``, and also by
  the binary name (the Chainguard/Wolfi records name sub-packages such as ``haproxy-2.8``);
* rpm packages by binary name and by source rpm name (AlmaLinux/Red Hat name binary rpms,
  Rocky names source rpms), in ``AlmaLinux:<major>``, ``Rocky Linux:<major>``, every
  ``Red Hat:…:<major>…`` ecosystem of the index, ``SUSE:…``/``openSUSE:…``, ``Mariner:<x.y>``,
  ``Azure Linux:<x.y>``;
* language packages in their own ecosystem (``PyPI``, ``npm``, ``Go``, ``Maven``, ``NuGet``) by
  the name normalised as that ecosystem compares names (NuGet ids case-insensitively).

An advisory that matches one package through several names or ecosystems gives one finding;
the first match in the order above wins (the standard release before Ubuntu Pro).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from scanning.advisories.ecosystems import describe_ecosystem, normalize_name
from scanning.advisories.index import AdvisoryIndex, IndexChange
from scanning.model import (
    OS_PACKAGE_TYPES,
    PACKAGE_TYPES_BY_VALUE,
    AssessmentStatus,
    CvssScore,
    Finding,
    FixStatus,
    MatchDetail,
    OSInfo,
    Package,
    PackageType,
    Severity,
)
from scanning.severity import (
    cvss_scores,
    decide_severity,
    fix_status,
    score_order,
    vendor_rating,
)
from scanning.versions import VersionError, compare, osv_ranges

logger = logging.getLogger(__name__)

_LANGUAGE_ECOSYSTEMS: dict[PackageType, str] = {
    PackageType.PYPI: "PyPI",
    PackageType.NPM: "npm",
    PackageType.GOLANG: "Go",
    PackageType.MAVEN: "Maven",
    PackageType.NUGET: "NuGet",
}

_CVE = re.compile(r"CVE-\d{4}-\d+")


@dataclass(frozen=True, slots=True, kw_only=True)
class OsTarget:
    """Where an OS's packages are looked up: exact ecosystems and ecosystem prefixes."""

    label: str  # "Debian 12", for remediation text
    ecosystems: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()  # Red Hat: every "Red Hat:<product>:<major>…" ecosystem
    package_type: PackageType = PackageType.DPKG
    # Only the newest release among the prefixes' ecosystems (Alpine edge: the newest branch
    # the index has); rescans still treat the prefix as a wildcard, which covers it.
    newest_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchResult:
    """``reason`` joins every note (gaps, failed comparisons, warnings) in one line;
    ``warnings`` are the packages that met a rejected advisory record, one line each."""

    status: AssessmentStatus
    findings: tuple[Finding, ...]
    reason: str = ""
    warnings: tuple[str, ...] = ()


def os_target(os_info: OSInfo) -> OsTarget | None:
    """The OSV ecosystems of an analysed OS, or None when OSV has no data for it.

    ``id`` and ``version_id`` are os-release's ``ID`` and ``VERSION_ID``; an Alpine ``branch``
    (from etc/apk/repositories) replaces VERSION_ID's, and ``edge`` is the newest Alpine branch
    the index holds.
    """
    os_id = os_info.id.strip().lower()
    version = os_info.version_id.strip()
    major = version.split(".", 1)[0]
    major_minor = ".".join(version.split(".")[:2])
    if os_id == "debian" and major.isdigit():
        return OsTarget(label=f"Debian {major}", ecosystems=(f"Debian:{major}",))
    if os_id == "ubuntu" and re.fullmatch(r"\d+\.\d+", version):
        year, month = version.split(".")
        # Ubuntu LTS releases are the April releases of even years (https://ubuntu.com/about/release-cycle).
        if month == "04" and int(year) % 2 == 0:
            return OsTarget(
                label=f"Ubuntu {version} LTS",
                ecosystems=(f"Ubuntu:{version}:LTS", f"Ubuntu:Pro:{version}:LTS"),
            )
        return OsTarget(label=f"Ubuntu {version}", ecosystems=(f"Ubuntu:{version}",))
    if os_id == "alpine" and os_info.branch == "edge":
        return OsTarget(label="Alpine edge", prefixes=("Alpine:",), newest_only=True,
                        package_type=PackageType.APK)
    if os_id == "alpine" and os_info.branch:
        major_minor = os_info.branch.removeprefix("v")
    if os_id == "alpine" and re.fullmatch(r"\d+\.\d+", major_minor):
        return OsTarget(
            label=f"Alpine {major_minor}",
            ecosystems=(f"Alpine:v{major_minor}",),
            package_type=PackageType.APK,
        )
    if os_id == "wolfi":
        return OsTarget(label="Wolfi", ecosystems=("Wolfi",), package_type=PackageType.APK)
    if os_id == "chainguard":
        return OsTarget(
            label="Chainguard", ecosystems=("Chainguard",), package_type=PackageType.APK
        )
    if not major.isdigit():
        return None
    rpm_targets = {
        "almalinux": OsTarget(label=f"AlmaLinux {major}", ecosystems=(f"AlmaLinux:{major}",)),
        "rocky": OsTarget(label=f"Rocky Linux {major}", ecosystems=(f"Rocky Linux:{major}",)),
        "rhel": OsTarget(
            label=f"Red Hat Enterprise Linux {major}",
            prefixes=(f"Red Hat:enterprise_linux:{major}:",),
        ),
        "mariner": OsTarget(
            label=f"CBL-Mariner {major_minor}", ecosystems=(f"Mariner:{major_minor}",)
        ),
        "azurelinux": OsTarget(
            label=f"Azure Linux {major_minor}", ecosystems=(f"Azure Linux:{major_minor}",)
        ),
        "sles": _suse_target(version, "SUSE:Linux Enterprise Server"),
        "opensuse-leap": OsTarget(
            label=f"openSUSE Leap {version}", ecosystems=(f"openSUSE:Leap {version}",)
        ),
    }
    target = rpm_targets.get(os_id)
    if target is None:
        return None
    return OsTarget(
        label=target.label,
        ecosystems=target.ecosystems,
        prefixes=target.prefixes,
        package_type=PackageType.RPM,
    )


def _suse_target(version: str, product: str) -> OsTarget:
    # os-release VERSION_ID "15.5" is "15 SP5" in SUSE's product names; "15" is 15 GA.
    major, _, service_pack = version.partition(".")
    name = f"{product} {major}" + (f" SP{service_pack}" if service_pack not in ("", "0") else "")
    return OsTarget(label=name.removeprefix("SUSE:"), ecosystems=(name,))


def match_inventory(
    os_info: OSInfo | None,
    packages: Sequence[Package],
    index: AdvisoryIndex,
    *,
    base_layer_digests: Collection[str] = (),
) -> MatchResult:
    """Findings for an inventory, and the image status they imply.

    ``base_layer_digests``: the layers that came from the base image (the first N layers of the
    image, where N is the base image's layer count when the scan knows it). A package that
    comes from one of them is fixed by rebuilding on a newer base image, and its remediation
    says so.

    Status: ``unhealthy`` when a finding remains; ``healthy`` when none and everything could be
    assessed; ``unsupported`` (with the reason) when OS packages or ecosystems could not be
    assessed and nothing was found in what could; ``partial`` when nothing was found but a
    package met an advisory record the index rejected (the warning names the package and the
    records: whether they affect it is unknown). Errors are the caller's ``failed``.
    """
    gaps: list[str] = []
    os_packages = [p for p in packages if p.type.is_os]
    target = os_target(os_info) if os_info is not None else None
    os_ecosystems = _resolve_ecosystems(target, index) if target is not None else ()
    if os_packages:
        if os_info is None:
            gaps.append(f"{len(os_packages)} OS packages but no operating system was detected")
        elif target is None:
            name = os_info.pretty_name or f"{os_info.id} {os_info.version_id}".strip()
            gaps.append(f"no advisory data for the operating system {name}")
        elif not os_ecosystems:
            gaps.append(
                f"the advisory index has no records for {target.label} "
                f"({', '.join(target.ecosystems + target.prefixes)})"
            )
    findings: dict[tuple[str, str, str, str], Finding] = {}
    unparsable = 0
    missing_ecosystems: set[str] = set()
    warnings: list[str] = []
    memo = index.package_memo
    names = index.name_memo
    for package in packages:
        if package.type in OS_PACKAGE_TYPES:
            if target is None:
                continue
            scope: tuple[str, ...] | str = os_ecosystems
        else:
            ecosystem = _LANGUAGE_ECOSYSTEMS.get(package.type)
            if ecosystem is None:
                continue
            if not index.has_ecosystem(ecosystem):
                missing_ecosystems.add(ecosystem)
                continue
            scope = ecosystem
        # Most packages: no record names them, whatever their version. The lookup names come
        # from the type, name, source name and (Maven) the purl's namespace: these fields
        # decide it for every version at once (``named_package_entries`` builds this key too).
        name_key = (scope, package.type, package.name, package.source_name,
                    package.purl if package.type is PackageType.MAVEN else "")
        named = names.get(name_key)
        if named is None:
            named = _package_named(index, package, scope)
            if len(names) >= MAX_REMEMBERED_NAMES:
                names.clear()
            names[name_key] = named
        if not named:
            continue
        from_base = bool(base_layer_digests) and package.layer_digest in base_layer_digests
        key = (scope, package.type, package.name, package.version, package.purl, package.path,
               package.source_name, package.source_version, from_base)
        matched = memo.get(key)
        if matched is None:
            matched = _match_package(index, package, scope, from_base=from_base)
            if matched is None:
                continue  # not named (the name memo says so first)
            if len(memo) >= MAX_REMEMBERED_PACKAGES:
                memo.clear()
            memo[key] = matched
        package_findings, failed, warning = matched
        unparsable += failed
        if warning:
            warnings.append(warning)
        for finding in package_findings:
            if (finding.layer_digest != package.layer_digest
                    or finding.layer_instruction != package.layer_instruction):
                finding = _in_layer(finding, package)
            findings[(finding.id, package.name, package.version, package.path)] = finding
    for ecosystem in sorted(missing_ecosystems):
        gaps.append(f"the advisory index has no records for {ecosystem}")
    notes = list(gaps)
    if unparsable:
        notes.append(f"{unparsable} version comparisons failed (unparsable versions)")
    notes.extend(warnings)
    ordered = tuple(
        sorted(
            findings.values(),
            key=lambda f: (-f.severity.rank, f.package, f.installed_version, f.id),
        )
    )
    reason = "; ".join(notes)
    if ordered:
        status = AssessmentStatus.UNHEALTHY
    elif gaps:
        status = AssessmentStatus.UNSUPPORTED
    elif warnings:
        status = AssessmentStatus.PARTIAL
    else:
        status = AssessmentStatus.HEALTHY
    return MatchResult(status=status, findings=ordered, reason=reason, warnings=tuple(warnings))


def named_package_entries(os_info: OSInfo | None, entries: Sequence[Any],
                          index: AdvisoryIndex) -> list[Any]:
    """The stored package entries (``package_to_json``'s dicts) of one inventory that
    ``match_inventory`` has to see to match it against ``index``: all but those the index's
    name memo already knows no record names (what ``match_inventory`` passes over without
    effect), so a re-match builds only the packages it matches. Packages whose OS or
    ecosystem the index lacks are kept (they make the verdict's gaps), and so is one package
    when every one would go (``not inventory.packages`` means "no packages found"). An entry
    left out lacks no field ``package_from_json`` requires (KeyError, as building it would
    raise). The lookups of the packages left out are not listed from what this returns: the
    caller has them from the match keys of the same document."""
    target = os_target(os_info) if os_info is not None else None
    os_ecosystems = _resolve_ecosystems(target, index) if target is not None else ()
    names = index.name_memo
    kinds = PACKAGE_TYPES_BY_VALUE
    maven = PackageType.MAVEN
    # Per package type: its scope, _KEEP or None (see _entry_scope); an unknown type is kept
    # (building it raises, as it should).
    scopes: dict[PackageType | None, Any] = {None: _KEEP}
    kept: list[Any] = []
    for data in entries:
        kind = kinds.get(data["type"])
        name, purl = data["name"], data["purl"]
        data["version"], data["path"]  # required: KeyError as package_from_json would
        scope = scopes.get(kind, _UNSET)
        if scope is _UNSET:
            scope = scopes[kind] = _entry_scope(kind, os_ecosystems, index)
        if scope is _KEEP:
            kept.append(data)
            continue
        # The name memo's key of this package, as match_inventory builds it.
        if scope is None or names.get((scope, kind, name, data.get("source_name", ""),
                                       purl if kind is maven else "")) is False:
            continue
        kept.append(data)
    if not kept and entries:
        kept.append(entries[0])
    return kept


_KEEP = object()
_UNSET = object()


def _entry_scope(kind: PackageType | None, os_ecosystems: tuple[str, ...],
                 index: AdvisoryIndex) -> Any:
    """Where ``match_inventory`` looks a package of this type up (``named_package_entries``):
    the OS's ecosystems or the language's; ``_KEEP`` when the OS or ecosystem is not in the
    index (the package makes a gap of the verdict); None when it is never matched."""
    if kind in OS_PACKAGE_TYPES:
        return os_ecosystems or _KEEP
    ecosystem = _LANGUAGE_ECOSYSTEMS.get(kind) if kind is not None else None
    if ecosystem is None:
        return None
    return ecosystem if index.has_ecosystem(ecosystem) else _KEEP


class _PackageMatch(NamedTuple):
    """What one package meets in the index: its findings, the version comparisons that
    failed, and the warning about rejected records ("" for none)."""

    findings: tuple[Finding, ...]
    unparsable: int
    warning: str


_UNAFFECTED = _PackageMatch((), 0, "")

# Packages whose matches are remembered per index (``AdvisoryIndex.package_memo``) before the
# memo is emptied: only packages an advisory or rejected record names, a few findings each.
MAX_REMEMBERED_PACKAGES = 50_000


# Package names remembered per index (``AdvisoryIndex.name_memo``) before that memo is emptied:
# ~200 bytes each.
MAX_REMEMBERED_NAMES = 100_000


def _package_lookups(package: Package, scope: tuple[str, ...] | str) -> list[Lookup]:
    """The lookups of one package in ``scope``, in the matcher's order."""
    if isinstance(scope, str):
        return [(scope, _language_name(package), _language_version(package))]
    return [(ecosystem, name, version) for ecosystem in scope
            for name, version in _os_names(package)]


def _package_named(index: AdvisoryIndex, package: Package,
                   scope: tuple[str, ...] | str) -> bool:
    """Whether an advisory or rejected record is filed under a name the package is looked up
    by in ``scope``, whatever its version."""
    return any(_named(index, ecosystem, name)
               for ecosystem, name, _ in _package_lookups(package, scope))


def _match_package(index: AdvisoryIndex, package: Package, scope: tuple[str, ...] | str, *,
                   from_base: bool) -> _PackageMatch | None:
    """One package's findings in ``scope`` (the OS's resolved ecosystems, or a language
    ecosystem): the same for every image with the same package in the same index, except for
    the layer it sits in, which ``match_inventory`` puts in (``_in_layer``). None when no
    advisory or rejected record names the package (the caller does not remember those)."""
    lookups = _package_lookups(package, scope)
    if not any(_named(index, ecosystem, name) for ecosystem, name, _ in lookups):
        return None
    found = [(lookup, _lookup_hits(index, *lookup), index.rejected_for(*lookup[:2]))
             for lookup in lookups]
    if not any(lookup_hits or lookup_rejected for _, lookup_hits, lookup_rejected in found):
        return _UNAFFECTED
    unparsable = 0
    # advisory id -> matches in lookup order; one finding per advisory and package.
    hits: dict[str, list[tuple[Any, MatchDetail, str]]] = {}
    rejected: dict[str, None] = {}
    for (ecosystem, name, version), lookup_hits, lookup_rejected in found:
        rejected.update(dict.fromkeys(i for i, _ in lookup_rejected))
        for advisory_id, entry, hit in lookup_hits:
            if hit is None:
                unparsable += 1
                logger.debug("advisory %s: cannot compare %s %s in %s", advisory_id, name,
                              version, ecosystem)
                continue
            detail = MatchDetail(ecosystem=ecosystem, searched_name=name,
                                 searched_version=version,
                                 range=_match_reason(index, entry, hit))
            hits.setdefault(advisory_id, []).append((entry, detail, hit.fixed_version or ""))
    warning = ""
    if rejected:
        warning = (
            f"{package.name} {package.version}: not assessed against advisory "
            f"record{'s' if len(rejected) > 1 else ''} {', '.join(rejected)}, which could "
            "not be compiled (rejected)"
        )
    members = []
    for advisory_id, candidates in hits.items():
        # The first match with a fix wins, else the first match: an Ubuntu advisory with
        # no fix in the standard archive but one in Ubuntu Pro says where the fix is.
        entry, detail, fixed = next((c for c in candidates if c[2]), candidates[0])
        members.append(_Member(advisory_id, entry, detail, fixed,
                               _rated(index, advisory_id, entry)))
    findings = tuple(_finding(index, group, package, from_base=from_base)
                     for group in _alias_groups(members))
    return _PackageMatch(findings, unparsable, warning)


# The slot descriptors of Finding (its fields, in order), for _in_layer.
_FINDING_SLOTS: tuple[Any, ...] = tuple(vars(Finding)[name] for name in Finding.__slots__)
_FINDING_VALUES = operator.attrgetter(*Finding.__slots__)
_LAYER_DIGEST: Any = vars(Finding)["layer_digest"]
_LAYER_INSTRUCTION: Any = vars(Finding)["layer_instruction"]


def _in_layer(finding: Finding, package: Package) -> Finding:
    """``finding`` for the same package in another layer: a copy with the package's layer
    digest and instruction (slot by slot: ``dataclasses.replace`` costs twice as much, and a
    re-match copies every remembered finding)."""
    copy = object.__new__(Finding)
    for slot, value in zip(_FINDING_SLOTS, _FINDING_VALUES(finding), strict=True):
        slot.__set__(copy, value)
    _LAYER_DIGEST.__set__(copy, package.layer_digest)
    _LAYER_INSTRUCTION.__set__(copy, package.layer_instruction)
    return copy


def _match_reason(index: AdvisoryIndex, entry: Mapping[str, Any],
                  hit: osv_ranges.AffectedResult) -> str:
    """The hit's reason; a match by the ``versions`` list of an entry whose ranges could not
    be compiled says so (osv.dev matches such entries by the list alone)."""
    skipped = index.compiled(entry).skipped_ranges
    if hit.reason == osv_ranges.LISTED_IN_VERSIONS and skipped:
        return f"{hit.reason} (a range could not be compiled: {skipped[0]})"
    return hit.reason


def _named(index: AdvisoryIndex, ecosystem: str, name: str) -> bool:
    """Whether any advisory (or rejected record) is filed under the package's name in
    ``ecosystem``, whatever its version: a package no record names is passed over before its
    hits are looked up and remembered (``_lookup_hits``), so names without advisories do not
    fill the memo."""
    normal = normalize_name(ecosystem, name)
    return (normal in index.packages.get(ecosystem, _NO_NAMES)
            or normal in index.rejected_keys.get(ecosystem, _NO_NAMES))


_NO_NAMES: Mapping[str, Any] = {}

# Lookups remembered per index before the memo is emptied (a worker matching for weeks with
# one index must not grow without bound): ~100 bytes each.
MAX_REMEMBERED_LOOKUPS = 500_000

LookupHit = tuple[str, Any, "osv_ranges.AffectedResult | None"]


def _lookup_hits(index: AdvisoryIndex, ecosystem: str, name: str, version: str
                 ) -> tuple[LookupHit, ...]:
    """``(advisory id, affected entry, hit)`` for each advisory under ``(ecosystem, name)``
    that affects ``version``, in index order; hit None when the version cannot be compared
    with the advisory's ranges. Remembered in ``index.lookup_memo``: images that share a
    package version compare it once per index."""
    key = (ecosystem, name, version)
    found = index.lookup_memo.get(key)
    if found is not None:
        return cast(tuple[LookupHit, ...], found)
    hits: list[LookupHit] = []
    for advisory_id, entry in index.lookup(ecosystem, name):
        try:
            hit = osv_ranges.evaluate(index.compiled(entry), version)
        except VersionError:
            hits.append((advisory_id, entry, None))
            continue
        if hit.affected:
            hits.append((advisory_id, entry, hit))
    if len(index.lookup_memo) >= MAX_REMEMBERED_LOOKUPS:
        index.lookup_memo.clear()
    index.lookup_memo[key] = result = tuple(hits)
    return result


def _resolve_ecosystems(target: OsTarget, index: AdvisoryIndex) -> tuple[str, ...]:
    """The target's ecosystems that the index holds, prefixes expanded, in target order."""
    found = [e for e in target.ecosystems if index.has_ecosystem(e)]
    if target.prefixes:
        expanded = [
            e
            for e in index.ecosystems()
            if any(e == p.rstrip(":") or e.startswith(p) for p in target.prefixes)
        ]
        if target.newest_only and expanded:
            expanded = [max(expanded, key=_release_key)]
        found.extend(expanded)
    return tuple(dict.fromkeys(found))


def _release_key(ecosystem: str) -> tuple[int, ...]:
    """``Alpine:v3.20`` -> (3, 20): the numbers in an ecosystem name, to find the newest."""
    return tuple(int(number) for number in re.findall(r"\d+", ecosystem))


def _os_names(package: Package) -> list[tuple[str, str]]:
    """The (name, version) pairs an OS package is looked up by, in lookup order."""
    if package.type == PackageType.DPKG:
        # Debian and Ubuntu publish advisories by source package, with source versions.
        return [(package.source, package.source_ver)]
    # apk and rpm source/binary versions agree (sub-packages share the origin's version).
    if package.source == package.name:
        return [(package.name, package.version)]
    return [(package.source, package.version), (package.name, package.version)]


def _language_name(package: Package) -> str:
    if package.type == PackageType.MAVEN and ":" not in package.name:
        # OSV Maven names are "groupId:artifactId"; the purl holds the group as its namespace.
        namespace = _purl_namespace(package.purl)
        if namespace:
            return f"{namespace}:{package.name}"
    return package.name


def _purl_namespace(purl: str) -> str:
    body = purl.split("?", 1)[0].split("@", 1)[0]
    parts = body.split("/")
    return "/".join(parts[1:-1]) if len(parts) > 2 else ""


def _language_version(package: Package) -> str:
    if package.type == PackageType.GOLANG:
        # Go modules write "v1.2.3" and the toolchain "go1.21.3"; OSV Go ranges are bare SemVer.
        return package.version.removeprefix("go").removeprefix("v")
    return package.version


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rated:
    """What one affected entry says whatever package it matches: computed once per index."""

    # The ids naming this record's vulnerability: its id, its aliases and its upstream id when
    # it has exactly one. A record with several upstream ids (a USN or DSA bundling many
    # CVEs) is not the same vulnerability as each of them: they stay in ``loose``.
    identity: tuple[str, ...]
    loose: tuple[str, ...]
    # The finding id and aliases when the record is alone in its alias group.
    finding_id: str
    aliases: tuple[str, ...]
    scores: tuple[CvssScore, ...]
    vendor: str
    severity: Severity
    specifics: tuple[Mapping[str, Any], ...]
    references: tuple[str, ...]
    summary: str
    description: str
    published: str
    modified: str


def _rated(index: AdvisoryIndex, advisory_id: str, entry: Mapping[str, Any]) -> _Rated:
    found = index.memo.get(id(entry))
    if isinstance(found, _Rated):
        return found
    advisory = index.advisory(advisory_id)
    specifics = (entry.get("es") or {}, entry.get("ds") or {})
    severity_entries = list(entry.get("severity") or []) + list(advisory.get("severity") or [])
    scores = cvss_scores(severity_entries)
    vendor = vendor_rating(severity_entries, advisory.get("ds") or {}, specifics)
    upstream = list(advisory.get("upstream", ()))
    identity = tuple(dict.fromkeys(
        [advisory_id, *advisory.get("aliases", ()), *(upstream if len(upstream) == 1 else ())]
    ))
    loose = tuple(name for name in dict.fromkeys(upstream) if name not in identity)
    finding_id = group_id(identity, (advisory_id,))
    rated = _Rated(
        identity=identity,
        loose=loose,
        finding_id=finding_id,
        aliases=group_aliases(finding_id, identity, loose),
        scores=scores,
        vendor=vendor,
        severity=decide_severity(vendor, scores),
        specifics=specifics,
        references=tuple(advisory.get("references", ())),
        summary=str(advisory.get("summary", "")),
        description=str(advisory.get("details", "")),
        published=str(advisory.get("published", "")),
        modified=str(advisory.get("modified", "")),
    )
    index.memo[id(entry)] = rated
    return rated


class _Member(NamedTuple):
    """One advisory that affects one package: a member of the package's alias groups. A
    named tuple, not a dataclass: one is made per finding of every re-match, where a frozen
    dataclass's slower construction shows in the weekly rescan."""

    advisory_id: str
    entry: Mapping[str, Any]
    detail: MatchDetail
    fixed: str
    rated: _Rated


def _alias_groups(members: Sequence[_Member]) -> list[list[_Member]]:
    """The members grouped by shared identity ids, transitively (union-find over the ids, so
    linear in their number), each group in member order."""
    if len(members) == 1:
        return [list(members)]
    owner: dict[str, int] = {}
    shared = False
    for position, member in enumerate(members):
        for name in member.rated.identity:
            shared = owner.setdefault(name, position) != position or shared
    if not shared:  # the common case: no two records of this package alias each other
        return [[member] for member in members]
    parent = list(range(len(members)))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for position, member in enumerate(members):
        for name in member.rated.identity:
            parent[root(position)] = root(owner[name])
    groups: dict[int, list[_Member]] = {}
    for position, member in enumerate(members):
        groups.setdefault(root(position), []).append(member)
    return list(groups.values())


def group_id(identity: Iterable[str], record_ids: Iterable[str]) -> str:
    """A group's finding id: its (lowest) CVE id when it has one, else its first record id."""
    cves = [name for name in identity if _CVE.fullmatch(name)]
    return min(cves, key=_cve_sort_key) if cves else min(record_ids)


def group_aliases(finding_id: str, identity: Iterable[str], loose: Iterable[str]
                  ) -> tuple[str, ...]:
    """Every other id of the group, CVE ids first (by year and number), then the rest sorted;
    then the upstream ids of bundle records."""
    names = {name for name in identity if name != finding_id}
    cves = sorted((name for name in names if _CVE.fullmatch(name)), key=_cve_sort_key)
    others = sorted(name for name in names if not _CVE.fullmatch(name))
    extra = [name for name in dict.fromkeys(loose) if name not in names and name != finding_id]
    return (*cves, *others, *extra)


def _lowest_fix(members: Sequence[_Member], package: Package, index: AdvisoryIndex) -> _Member:
    """The member whose fixed version is the lowest of the group's (members without a fix
    do not count); the first member when none has one."""
    fixing = [member for member in members if member.fixed]
    if not fixing:
        return members[0]
    scheme = index.compiled(fixing[0].entry).scheme

    def order(left: _Member, right: _Member) -> int:
        try:
            return compare(scheme, left.fixed, right.fixed)
        except VersionError:
            logger.debug("cannot order fixed versions %s and %s of %s", left.fixed,
                         right.fixed, package.name)
            return 0

    return min(fixing, key=functools.cmp_to_key(order))


def _finding(
    index: AdvisoryIndex, members: Sequence[_Member], package: Package, *, from_base: bool
) -> Finding:
    """One finding for an alias group: the CVE id, the lowest fix any member names, the
    vendor rating of a member (the most severe when several rate it) else the highest CVSS
    rating any member gives; text from the first member (by id) that has a summary."""
    if len(members) == 1:
        fixing = text = members[0]
        rated = fixing.rated
        finding_id, aliases, scores = rated.finding_id, rated.aliases, rated.scores
        vendor, severity, references = rated.vendor, rated.severity, rated.references
        published, modified = rated.published, rated.modified
    else:
        members = sorted(members, key=lambda member: member.advisory_id)
        identity = dict.fromkeys(name for m in members for name in m.rated.identity)
        finding_id = group_id(identity, (m.advisory_id for m in members))
        aliases = group_aliases(finding_id, identity,
                                (name for m in members for name in m.rated.loose))
        fixing = _lowest_fix(members, package, index)
        text = next((m for m in members if m.rated.summary), members[0])
        rated_by_vendor = [m.rated for m in members if m.rated.vendor]
        if rated_by_vendor:
            rating = max(rated_by_vendor, key=lambda each: each.severity.rank)
            vendor, severity = rating.vendor, rating.severity
        else:
            vendor = ""
            severity = max((m.rated.severity for m in members), key=lambda each: each.rank)
        scores = tuple(sorted(dict.fromkeys(s for m in members for s in m.rated.scores),
                              key=score_order))
        references = tuple(dict.fromkeys(ref for m in members for ref in m.rated.references))
        published = min((m.rated.published for m in members), key=lambda t: (not t, t))
        modified = max(m.rated.modified for m in members)
    status = fix_status(fixing.fixed, fixing.rated.specifics)
    detail = fixing.detail
    where = describe_ecosystem(detail.ecosystem) if package.type.is_os else detail.ecosystem
    return Finding(
        id=finding_id,
        aliases=aliases,
        package=package.name,
        installed_version=package.version,
        package_type=package.type,
        purl=package.purl,
        source_package=package.source,
        fixed_version=fixing.fixed,
        fix_status=status,
        severity=severity,
        vendor_severity=vendor,
        cvss=scores,
        remediation=remediation(package, detail, fixing.fixed, status, where,
                                from_base=from_base),
        summary=text.rated.summary,
        description=text.rated.description,
        published=published,
        modified=modified,
        references=references,
        layer_digest=package.layer_digest,
        layer_instruction=package.layer_instruction,
        path=package.path,
        match=detail,
    )


def _cve_sort_key(cve: str) -> tuple[int, int]:
    _, year, number = cve.split("-")
    return int(year), int(number)


def remediation(
    package: Package,
    detail: MatchDetail,
    fixed_version: str,
    status: FixStatus,
    where: str,
    *,
    from_base: bool,
) -> str:
    """One sentence a developer can act on."""
    subject = package.name
    if package.type.is_os and package.source != package.name:
        subject = f"{package.name} (source package {package.source})"
    if status == FixStatus.FIXED:
        if from_base:
            return (
                "Rebuild on a newer base image: the package comes from the base layer "
                f"({subject} {fixed_version} is fixed in {where})"
            )
        return (
            f"Upgrade {subject} from {detail.searched_version} to {fixed_version} "
            f"(fixed in {where})"
        )
    if status == FixStatus.UNIMPORTANT:
        return f"No fix is planned: {where} rates this issue unimportant"
    if status == FixStatus.WONT_FIX:
        return f"No fix is planned: {where} will not fix this issue"
    if status == FixStatus.END_OF_LIFE:
        return f"No fix will come: {where} is end of life; move to a supported release"
    return f"No fix is available yet in {where}"


def package_ecosystems(os_info: OSInfo | None) -> dict[PackageType, str]:
    """The ecosystem each package type is looked up in, for reports (``Debian:12``, ``PyPI``)."""
    result = dict(_LANGUAGE_ECOSYSTEMS)
    target = os_target(os_info) if os_info is not None else None
    if target is not None:
        result[target.package_type] = (
            target.ecosystems[0] if target.ecosystems else target.prefixes[0].rstrip(":")
        )
    return result


# ------------------------------------------------------------------------------- re-matching
#
# What a re-match of an inventory depends on, so the weekly rescan can tell without the
# inventory whether today's index changes an image's findings. ``match_inventory``'s result
# is a function of, per lookup (ecosystem, normalised name, version): the advisories under that
# key that affect the version (or whose ranges cannot be compared with it), in lookup order,
# with their content (stood for by ``modified``); and of which of the image's ecosystems the
# index holds. ``package_lookups`` lists the lookups without the index (a Red Hat prefix stays
# a wildcard ``<prefix>*``), ``lookup_signature`` condenses one lookup's hits, and
# ``lookups_affected`` says whether an ``IndexChange`` can change any of them.

PREFIX_WILDCARD = "*"
Lookup = tuple[str, str, str]  # (ecosystem or "<prefix>*", normalised name, version)


def package_lookups(os_info: OSInfo | None, packages: Iterable[Package]) -> tuple[Lookup, ...]:
    """Every lookup ``match_inventory`` may make for these packages, whatever the index holds
    (sorted, without repeats)."""
    target = os_target(os_info) if os_info is not None else None
    ecosystems = (() if target is None else
                  target.ecosystems + tuple(p + PREFIX_WILDCARD for p in target.prefixes))
    lookups: set[Lookup] = set()
    add = lookups.add
    for package in packages:
        kind = package.type
        if kind in OS_PACKAGE_TYPES:
            for ecosystem in ecosystems:
                for name, version in _os_names(package):
                    add((ecosystem, normalize_name(ecosystem, name), version))
            continue
        language = _LANGUAGE_ECOSYSTEMS.get(kind)
        if language is None:
            continue
        # _language_name and _language_version inline for the types they leave alone (the
        # rescan asks this for every package of every re-matched image).
        name = _language_name(package) if kind is PackageType.MAVEN else package.name
        version = (_language_version(package) if kind is PackageType.GOLANG
                   else package.version)
        add((language, normalize_name(language, name), version))
    return tuple(sorted(lookups))


def _prefix_ecosystems(index: AdvisoryIndex, wildcard: str) -> tuple[str, ...]:
    # The same expansion as _resolve_ecosystems for one prefix.
    prefix = wildcard.removesuffix(PREFIX_WILDCARD)
    return tuple(e for e in index.ecosystems() if e == prefix.rstrip(":") or e.startswith(prefix))


def lookup_signature(index: AdvisoryIndex, lookup: Lookup) -> str:
    """16 hex digits of BLAKE2b over the lookup's hits (``<id>|<modified>|<fixed>``, ``!`` for
    a version that cannot be compared) and the rejected records under its key
    (``!<id>|<modified>``: they make the match ``partial``), in the order the matcher meets
    them; "" for none. Remembered per index, like the hits."""
    key = ("signature", *lookup)
    found = index.lookup_memo.get(key)
    if found is not None:
        return cast(str, found)
    index.lookup_memo[key] = signature = _signature(index, lookup)
    return signature


def _signature(index: AdvisoryIndex, lookup: Lookup) -> str:
    ecosystem, name, version = lookup
    ecosystems = (_prefix_ecosystems(index, ecosystem) if ecosystem.endswith(PREFIX_WILDCARD)
                  else (ecosystem,))
    hits: list[str] = []
    for each in ecosystems:
        if not _named(index, each, name):
            continue
        for advisory_id, _entry, hit in _lookup_hits(index, each, name, version):
            modified = index.advisories.get(advisory_id, {}).get("modified", "")
            fixed = "!" if hit is None else hit.fixed_version or ""
            hits.append(f"{each}|{advisory_id}|{modified}|{fixed}")
        hits.extend(f"{each}|!{advisory_id}|{modified}"
                    for advisory_id, modified in index.rejected_for(each, name))
    if not hits:
        return ""
    return hashlib.blake2b("\n".join(hits).encode(), digest_size=8).hexdigest()


def lookups_affected(signed: Iterable[tuple[Lookup, str]], change: IndexChange,
                     index: AdvisoryIndex) -> bool:
    """Whether ``change`` (from the index the signatures were taken with to ``index``) can
    change the findings of an inventory with these signed lookups."""
    if change.empty:
        return False
    if not change.ecosystems:
        # The usual change: keys only. Checked inline (two calls per lookup cost ~0.1 ms an
        # image); a prefix lookup (Red Hat's) still asks _key_changed for its ecosystems.
        keys = change.keys
        for lookup, signature in signed:
            if (((lookup[0], lookup[1]) in keys
                 or (lookup[0].endswith(PREFIX_WILDCARD) and _key_changed(lookup, change, index)))
                    and lookup_signature(index, lookup) != signature):
                return True
        return False
    for lookup, signature in signed:
        if _ecosystem_changed(lookup, change):
            return True
        if _key_changed(lookup, change, index) and lookup_signature(index, lookup) != signature:
            return True
    return False


def unchanged_signatures(signed: Iterable[tuple[Lookup, str]], change: IndexChange,
                         index: AdvisoryIndex) -> dict[Lookup, str]:
    """The signatures (taken with the index ``change`` starts from) that are still those of
    ``index``: of the lookups whose ecosystems and keys the change leaves alone, since a
    signature depends only on the advisories under its key (their ids, ``modified`` and
    rejected records, which the key fingerprints cover). A re-match takes these instead of
    computing every lookup's signature again."""
    if not change.ecosystems:  # the usual change: keys only (see lookups_affected)
        keys = change.keys
        return {lookup: signature for lookup, signature in signed
                if (lookup[0], lookup[1]) not in keys
                and not (lookup[0].endswith(PREFIX_WILDCARD)
                         and _key_changed(lookup, change, index))}
    return {lookup: signature for lookup, signature in signed
            if not _ecosystem_changed(lookup, change)
            and not _key_changed(lookup, change, index)}


def _ecosystem_changed(lookup: Lookup, change: IndexChange) -> bool:
    """Whether an ecosystem the lookup searches appeared in or went from the index."""
    ecosystem = lookup[0]
    if ecosystem.endswith(PREFIX_WILDCARD):
        prefix = ecosystem.removesuffix(PREFIX_WILDCARD)
        return any(e == prefix.rstrip(":") or e.startswith(prefix) for e in change.ecosystems)
    return ecosystem in change.ecosystems


def _key_changed(lookup: Lookup, change: IndexChange, index: AdvisoryIndex) -> bool:
    """Whether the advisories under a key the lookup searches changed."""
    ecosystem, name, _ = lookup
    if ecosystem.endswith(PREFIX_WILDCARD):
        return any((e, name) in change.keys for e in _prefix_ecosystems(index, ecosystem))
    return (ecosystem, name) in change.keys
