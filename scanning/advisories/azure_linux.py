"""Azure Linux / CBL-Mariner OVAL (microsoft/AzureLinuxVulnerabilityData) to OSV records.

Microsoft publishes one OVAL 5.11 file per release: ``cbl-mariner-1.0-oval.xml``,
``cbl-mariner-2.0-oval.xml``, ``azurelinux-3.0-oval.xml``. Each ``definition`` is one CVE for
one *source* package (the ``rpminfo_object`` name is the spec name: ``curl``, never
``curl-libs``), with one ``criterion`` -> ``rpminfo_test`` -> ``rpminfo_state`` holding a single
``evr`` (``0:8.5.0-1.cm2``). The metadata carries the CVE (``reference source="CVE"``), the
vendor ``severity`` and ``patchable``. How a definition becomes a record (the rules Trivy's
``trivy-db/pkg/vulnsrc/azure`` and Vunnel's ``providers/mariner`` apply):

* ``patchable`` ``Not Applicable``: the CVE no longer is or never was applicable: no record.
* ``operation="less than"``: fixed in that EVR: ``introduced 0, fixed <evr>``.
* ``operation="less than or equal"`` (published with ``patchable false``, "No patch is
  available currently"): every version up to that EVR is affected and no fix exists:
  ``introduced 0, last_affected <evr>``, so the finding is ``not_fixed``.
* The vendor severity (``Critical|High|Medium|Low``) goes to the affected entry's
  ``database_specific.severity``, where ``scanning.severity`` reads vendor ratings.

Ecosystems are osv.dev's names: ``Mariner:1.0``, ``Mariner:2.0``, ``Azure Linux:3.0``, taken
from the file name (the files say the release nowhere else). Record ids are
``MARINER-2.0-<package>-<CVE>`` / ``AZURELINUX-3.0-<package>-<CVE>``, shapes osv.dev does not
use; the rare feed that has two definitions for one package and CVE gives one record with one
affected entry per definition, so a package gets one finding per CVE.

An EVR must be ``epoch:version-release`` in rpm's version characters. The real feeds hold EVRs
that are not (``0:null.cm2``, ``0: 1.57.0-1.cm2``, ``0:0.9.0.cm2``, ``0:1.17.13-2,1.18.8-2``):
without a release the dist tag is glued to the version, and ``0.9.0.cm2`` sorts *above* the
fixed ``0.9.0-1.cm2``, so using it would report fixed packages as vulnerable. Such definitions,
and definitions whose references do not resolve, are rejected: ``OvalResult.rejected`` lists
``(record id, reason)`` for each, and ``db build`` prints them. A file that is not XML or not
OVAL is an ``AdvisoryError`` naming the file (and the line and column for XML errors).
"""

from __future__ import annotations

import logging
import lzma
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanning.advisories.feeds import Progress, fetch_url
from scanning.config import setting
from scanning.errors import AdvisoryError

logger = logging.getLogger(__name__)

# The 2.0 file is ~4 MB, growing by a few MB a year; far beyond is not an OVAL feed. The parsed
# tree takes ~8 times the file's size, so this cap also bounds memory (~0.5 GB).
MAX_OVAL_BYTES = 64 * 1024 * 1024
# The files `download_oval` fetches from AZURE_LINUX_OVAL_URL, in release order.
OVAL_FILES = ("cbl-mariner-1.0-oval.xml", "cbl-mariner-2.0-oval.xml", "azurelinux-3.0-oval.xml")

_DEF = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"
_LINUX = "{http://oval.mitre.org/XMLSchema/oval-definitions-5#linux}"
_FILE_NAME = re.compile(r"(cbl-mariner|azurelinux)-(\d+\.\d+)-oval\.xml(?:\.xz)?")
_PRODUCTS = {"cbl-mariner": ("Mariner", "MARINER"), "azurelinux": ("Azure Linux", "AZURELINUX")}
# rpm's version and release characters (rpmvercmp separators plus ~ and ^); epoch digits.
_EVR = re.compile(
    r"(?P<epoch>[0-9]+):(?P<version>[A-Za-z0-9._+~^]+)-(?P<release>[A-Za-z0-9._+~^]+)"
)
_LESS_THAN = "less than"
_LESS_OR_EQUAL = "less than or equal"

Rejected = tuple[str, str]  # (record id, one-line reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class OvalResult:
    """The OSV records of one OVAL file and the definitions that could not become one."""

    where: str  # the file or URL read
    ecosystem: str
    records: tuple[dict[str, Any], ...]
    rejected: tuple[Rejected, ...] = ()
    # (record id, package) of each rejected definition, "" when the package is unknown.
    rejected_packages: tuple[tuple[str, str], ...] = ()
    modified: str = ""

    def rejected_records(self) -> list[dict[str, Any]]:
        """The rejected definitions as the index lists rejected records (``compile_index``)."""
        packages = dict(self.rejected_packages)
        return [{"id": record_id, "modified": self.modified, "reason": reason,
                 "keys": [[self.ecosystem, packages[record_id]]] if packages.get(record_id)
                 else []}
                for record_id, reason in self.rejected]


def oval_ecosystem(file_name: str) -> tuple[str, str]:
    """(OSV ecosystem, id prefix) for an upstream file name: ``Mariner:2.0``, ``MARINER-2.0``."""
    match = _FILE_NAME.fullmatch(file_name)
    if match is None:
        raise AdvisoryError(
            f"{file_name}: cannot tell the release; name the file as upstream does "
            f"({', '.join(OVAL_FILES)}, optionally .xz)"
        )
    ecosystem, prefix = _PRODUCTS[match[1]]
    return f"{ecosystem}:{match[2]}", f"{prefix}-{match[2]}"


def read_oval_file(path: Path) -> OvalResult:
    """Records of one OVAL file, plain or ``.xz``; the release comes from the file name."""
    ecosystem, prefix = oval_ecosystem(path.name)
    try:
        if path.suffix == ".xz":
            with lzma.open(path) as stream:
                data = stream.read(MAX_OVAL_BYTES + 1)
        else:
            with path.open("rb") as plain:
                data = plain.read(MAX_OVAL_BYTES + 1)
    except (OSError, lzma.LZMAError) as error:
        raise AdvisoryError(f"{path}: cannot read: {error}") from error
    if len(data) > MAX_OVAL_BYTES:
        raise AdvisoryError(f"{path}: larger than {MAX_OVAL_BYTES} bytes")
    return parse_oval(data, str(path), ecosystem=ecosystem, id_prefix=prefix)


def parse_oval(data: bytes, where: str, *, ecosystem: str, id_prefix: str) -> OvalResult:
    """OSV records for one OVAL document's bytes (see the module docstring for the rules).

    ElementTree resolves no external entities, and expat (2.4.1 and later) refuses
    entity-expansion bombs, so a hostile feed costs at most its capped size.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        line, column = error.position
        raise AdvisoryError(
            f"{where}: not valid XML at line {line}, column {column}: {error}"
        ) from error
    if root.tag != f"{_DEF}oval_definitions":
        raise AdvisoryError(f"{where}: not an OVAL definitions document (root {root.tag!r})")
    tests = {t.get("id", ""): t for t in root.iter(f"{_LINUX}rpminfo_test")}
    names = {
        o.get("id", ""): (o.findtext(f"{_LINUX}name") or "").strip()
        for o in root.iter(f"{_LINUX}rpminfo_object")
    }
    states = {s.get("id", ""): s.find(f"{_LINUX}evr") for s in root.iter(f"{_LINUX}rpminfo_state")}
    modified_default = (root.findtext(f"{_DEF}generator/{{*}}timestamp") or "").strip()
    by_id: dict[str, dict[str, Any]] = {}
    rejected: list[Rejected] = []
    rejected_packages: list[tuple[str, str]] = []
    for definition in root.iter(f"{_DEF}definition"):
        try:
            converted = _convert(definition, tests, names, states, ecosystem, id_prefix,
                                 modified_default)
        except _Reject as reject:
            rejected.append((reject.record_id, reject.reason))
            rejected_packages.append((reject.record_id, reject.package))
            continue
        if converted is None:
            continue
        record = by_id.get(converted["id"])
        if record is None:
            by_id[converted["id"]] = converted
        else:
            record["affected"].extend(converted["affected"])
            record["modified"] = max(record["modified"], converted["modified"])
    for record_id, reason in rejected:
        logger.debug("%s: rejected %s: %s", where, record_id, reason)
    if rejected:
        logger.warning("%s: %d definitions rejected, the first: %s", where, len(rejected),
                       rejected[0][1])
    return OvalResult(
        where=where,
        ecosystem=ecosystem,
        records=tuple(by_id[key] for key in sorted(by_id)),
        rejected=tuple(rejected),
        rejected_packages=tuple(rejected_packages),
        modified=modified_default,
    )


class _Reject(Exception):
    def __init__(self, record_id: str, reason: str, package: str = "") -> None:
        super().__init__(reason)
        self.record_id = record_id
        self.reason = reason
        self.package = package


def _convert(
    definition: ET.Element,
    tests: dict[str, ET.Element],
    names: dict[str, str],
    states: dict[str, ET.Element | None],
    ecosystem: str,
    id_prefix: str,
    modified_default: str,
) -> dict[str, Any] | None:
    definition_id = definition.get("id", "")
    metadata = definition.find(f"{_DEF}metadata")
    reference = metadata.find(f"{_DEF}reference[@source='CVE']") if metadata is not None else None
    cve = (reference.get("ref_id") or "").strip() if reference is not None else ""
    where = f"{cve or '(no CVE)'} ({definition_id})"
    if metadata is None or reference is None or not cve:
        raise _Reject(definition_id, f"{where}: no metadata with a CVE reference")
    patchable = (metadata.findtext(f"{_DEF}patchable") or "").strip()
    if patchable.lower() == "not applicable":
        return None
    criteria = definition.findall(f".//{_DEF}criterion")
    if len(criteria) != 1:
        raise _Reject(definition_id, f"{where}: {len(criteria)} criteria, expected one")
    test = tests.get(criteria[0].get("test_ref", ""))
    object_ref = test.find(f"{_LINUX}object") if test is not None else None
    state_ref = test.find(f"{_LINUX}state") if test is not None else None
    if object_ref is None or state_ref is None:
        raise _Reject(definition_id, f"{where}: test {criteria[0].get('test_ref')!r} is missing")
    package = names.get(object_ref.get("object_ref", ""), "")
    evr = states.get(state_ref.get("state_ref", ""))
    record_id = f"{id_prefix}-{package}-{cve}"
    if not package or evr is None:
        raise _Reject(record_id, f"{where}: the test's package name or evr is missing", package)
    text = evr.text or ""
    parsed = _EVR.fullmatch(text)
    if parsed is None:
        raise _Reject(record_id, f"{where}: evr {text!r} is not a valid rpm EVR", package)
    operation = evr.get("operation", "")
    if operation == _LESS_THAN:
        event = {"fixed": _version(parsed)}
    elif operation == _LESS_OR_EQUAL:
        event = {"last_affected": _version(parsed)}
    else:
        raise _Reject(record_id, f"{where}: evr operation {operation!r} is not supported",
                      package)
    title = (metadata.findtext(f"{_DEF}title") or "").strip()
    published = (metadata.findtext(f"{_DEF}advisory_date") or "").strip()
    specific: dict[str, Any] = {"source": "azure-linux-oval", "definition": definition_id,
                                "patchable": patchable}
    severity = (metadata.findtext(f"{_DEF}severity") or "").strip()
    if severity:
        specific["severity"] = severity
    return {
        "id": record_id,
        "aliases": [cve],
        "summary": title,
        "details": (metadata.findtext(f"{_DEF}description") or "").strip(),
        "published": published,
        # Definitions without an advisory date take the file's timestamp: a change to them is
        # then never hidden from the rescan's per-key fingerprints (id + modified).
        "modified": published or modified_default,
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, event]}],
                "database_specific": specific,
            }
        ],
        "references": [
            {"type": "ADVISORY", "url": url}
            for url in (reference.get("ref_url", "").strip(),)
            if url
        ],
    }


def _version(evr: re.Match[str]) -> str:
    # The rpm analyzer writes installed versions without a zero epoch; so do we, so the fixed
    # version in a remediation reads like the installed one.
    body = f"{evr['version']}-{evr['release']}"
    return body if int(evr["epoch"]) == 0 else f"{int(evr['epoch'])}:{body}"


def oval_url(file_name: str, base: str | None = None) -> str:
    root = (base if base is not None else setting("AZURE_LINUX_OVAL_URL")).rstrip("/")
    return f"{root}/{urllib.parse.quote(file_name)}"


def download_oval(
    destination: Path, *, base: str | None = None, progress: Progress | None = None
) -> tuple[OvalResult, ...]:
    """Fetch every file of ``OVAL_FILES`` from ``AZURE_LINUX_OVAL_URL`` (or ``base``) into the
    folder ``destination`` and convert it. A download replaces the earlier copy only once it
    converted, so a failed or corrupt download leaves the previous copy intact."""
    results = []
    for name in OVAL_FILES:
        url = oval_url(name, base)
        target = destination / name
        part = fetch_url(url, target, label=name, progress=progress)
        ecosystem, prefix = oval_ecosystem(name)
        try:
            if part.stat().st_size > MAX_OVAL_BYTES:
                raise AdvisoryError(f"{url}: larger than {MAX_OVAL_BYTES} bytes")
            result = parse_oval(part.read_bytes(), url, ecosystem=ecosystem, id_prefix=prefix)
        except AdvisoryError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, target)
        results.append(result)
    return tuple(results)
