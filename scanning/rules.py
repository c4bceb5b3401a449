"""Disable rules: which findings to hide, and what that does to an image's status.

Like Defender for container registries' "disable specific vulnerability findings" rules: a rule
hides the findings that match **all** of its criteria (within one list criterion, any entry
matches). Hidden findings stay stored and visible with ``disabled_by`` set to the rule id; they
no longer make an image unhealthy. Expired rules are ignored, so their findings come back on
the next ``apply_rules``. A rule with no criterion at all is refused: it would hide everything.

Pure logic, no I/O: the store keeps rules (``scanning.store``) and the functions apply them to
stored findings without a rescan. Rules also come from OpenVEX documents (``not_affected``
statements), see ``rules_from_openvex``.

JSON shape (HTTP API and storage)::

    {"id": "…", "justification": "why", "created": "2025-01-01T00:00:00Z",
     "expires": "2025-06-01T00:00:00Z" | null, "createdBy": "", "source": "",
     "criteria": {"vulnerabilityIds": ["CVE-…"], "minSeverity": "low", "maxSeverity": "high",
                  "cvssMin": 0.0, "cvssMax": 6.9, "fixStatuses": ["not_fixed"],
                  "packages": ["openssl"], "repository": "team/*", "digest": "sha256:…",
                  "os": "debian:12"}}
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from scanning.errors import BadRequest
from scanning.model import Finding, FixStatus, OSInfo, Severity

MAX_LIST_ITEMS = 1000
MAX_TEXT = 2000
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_RULE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CRITERIA_FIELDS = frozenset({
    "vulnerabilityIds", "minSeverity", "maxSeverity", "cvssMin", "cvssMax", "fixStatuses",
    "packages", "repository", "digest", "os",
})
_RULE_FIELDS = frozenset({"id", "justification", "created", "expires", "createdBy", "source",
                          "criteria"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCriteria:
    """What a rule matches; unset criteria match everything.

    ``vulnerability_ids`` match a finding's id or any alias, case-insensitively.
    ``min_severity``/``max_severity`` and ``cvss_min``/``cvss_max`` are inclusive bounds; the
    CVSS criterion uses the finding's highest base score and never matches a finding without
    one. ``package_names`` match the package or its source package, case-insensitively.
    ``repository_pattern`` is a shell glob over the whole repository name (``*`` also crosses
    ``/``). ``image_digest`` matches the image (index) digest or the platform manifest digest.
    ``os`` is an os-release ``ID`` (``debian``) or ``ID:VERSION_ID`` (``alpine:3.19`` also
    matches ``3.19.1``).
    """

    vulnerability_ids: tuple[str, ...] = ()
    min_severity: Severity | None = None
    max_severity: Severity | None = None
    cvss_min: float | None = None
    cvss_max: float | None = None
    fix_statuses: tuple[FixStatus, ...] = ()
    package_names: tuple[str, ...] = ()
    repository_pattern: str = ""
    image_digest: str = ""
    os: str = ""

    @property
    def is_empty(self) -> bool:
        return self == RuleCriteria()


@dataclass(frozen=True, slots=True, kw_only=True)
class DisableRule:
    id: str
    justification: str
    created: datetime
    criteria: RuleCriteria
    expires: datetime | None = None
    created_by: str = ""
    source: str = ""  # e.g. "openvex:<document @id>"

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageContext:
    """What a rule may need to know about the image a finding belongs to."""

    registry: str
    repository: str
    digest: str
    manifest_digest: str = ""  # the platform manifest, when ``digest`` is an index
    os: OSInfo | None = None


# ---------------------------------------------------------------- matching


def rule_matches(rule: DisableRule, finding: Finding, image: ImageContext) -> bool:
    """Whether ``rule`` hides ``finding`` of ``image`` (expiry is not checked here)."""
    criteria = rule.criteria
    if criteria.is_empty:
        return False
    if criteria.vulnerability_ids:
        wanted = {item.casefold() for item in criteria.vulnerability_ids}
        names = {finding.id.casefold(), *(alias.casefold() for alias in finding.aliases)}
        if not wanted & names:
            return False
    if criteria.min_severity is not None and finding.severity < criteria.min_severity:
        return False
    if criteria.max_severity is not None and finding.severity > criteria.max_severity:
        return False
    if criteria.cvss_min is not None or criteria.cvss_max is not None:
        score = highest_cvss(finding)
        if score is None:
            return False
        if criteria.cvss_min is not None and score < criteria.cvss_min:
            return False
        if criteria.cvss_max is not None and score > criteria.cvss_max:
            return False
    if criteria.fix_statuses and finding.fix_status not in criteria.fix_statuses:
        return False
    if criteria.package_names:
        wanted = {name.casefold() for name in criteria.package_names}
        if not wanted & {finding.package.casefold(), finding.source_package.casefold()}:
            return False
    if criteria.repository_pattern and not fnmatch.fnmatchcase(
        image.repository, criteria.repository_pattern
    ):
        return False
    if criteria.image_digest and criteria.image_digest not in (
        image.digest, image.manifest_digest
    ):
        return False
    return not criteria.os or _os_matches(criteria.os, image.os)


def highest_cvss(finding: Finding) -> float | None:
    return max((score.base_score for score in finding.cvss), default=None)


def _os_matches(wanted: str, os_info: OSInfo | None) -> bool:
    if os_info is None:
        return False
    os_id, _, version = wanted.partition(":")
    if os_id.casefold() != os_info.id.casefold():
        return False
    if not version:
        return True
    return os_info.version_id == version or os_info.version_id.startswith(version + ".")


def apply_rules(
    rules: Iterable[DisableRule],
    findings: Iterable[Finding],
    image: ImageContext,
    now: datetime,
) -> tuple[Finding, ...]:
    """Set ``disabled_by`` on every finding from the first active rule that matches it.

    Rules are tried in id order so the outcome does not depend on storage order. A finding no
    active rule matches gets ``disabled_by`` cleared, so deleting or expiring a rule brings its
    findings back.
    """
    active = sorted((rule for rule in rules if not rule.expired(now)), key=lambda rule: rule.id)
    result = []
    for finding in findings:
        rule_id = next((rule.id for rule in active if rule_matches(rule, finding, image)), "")
        result.append(
            finding if finding.disabled_by == rule_id
            else dataclasses.replace(finding, disabled_by=rule_id)
        )
    return tuple(result)


# ---------------------------------------------------------------- JSON


def _fail(path: str, reason: str) -> BadRequest:
    return BadRequest(f"rule field {path!r}: {reason}")


def _text(data: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise _fail(path, "is required")
        return ""
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise _fail(path, "must not be empty")
    if len(value) > MAX_TEXT:
        raise _fail(path, f"is longer than {MAX_TEXT} characters")
    return value


def _string_list(data: Mapping[str, Any], name: str, path: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, "must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise _fail(path, f"has more than {MAX_LIST_ITEMS} entries")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _fail(f"{path}[{index}]", "must be a non-empty string")
        if len(item) > MAX_TEXT:
            raise _fail(f"{path}[{index}]", f"is longer than {MAX_TEXT} characters")
        items.append(item.strip())
    return tuple(dict.fromkeys(items))


def _severity(data: Mapping[str, Any], name: str, path: str) -> Severity | None:
    text = _text(data, name, path)
    if not text:
        return None
    try:
        return Severity(text.lower())
    except ValueError:
        choices = ", ".join(severity.value for severity in Severity)
        raise _fail(path, f"must be one of {choices}, got {text!r}") from None


def _score(data: Mapping[str, Any], name: str, path: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "must be a number")
    if not math.isfinite(value) or not 0.0 <= value <= 10.0:
        raise _fail(path, f"must be between 0 and 10, got {value}")
    return float(value)


def _time_field(value: object, path: str) -> datetime | None:
    """An RFC 3339 timestamp with a time zone (``Z`` or an offset), as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(path, "must be an RFC 3339 timestamp string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(path, f"is not an RFC 3339 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise _fail(path, f"needs a time zone (Z or +hh:mm): {value!r}")
    return moment.astimezone(UTC)


def criteria_from_json(data: object, path: str = "criteria") -> RuleCriteria:
    if not isinstance(data, dict):
        raise _fail(path, "must be an object")
    unknown = sorted(set(data) - _CRITERIA_FIELDS)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"is not a known criterion "
                    f"(known: {', '.join(sorted(_CRITERIA_FIELDS))})")
    fix_statuses = []
    for index, text in enumerate(_string_list(data, "fixStatuses", f"{path}.fixStatuses")):
        try:
            fix_statuses.append(FixStatus(text.lower()))
        except ValueError:
            choices = ", ".join(status.value for status in FixStatus)
            raise _fail(f"{path}.fixStatuses[{index}]",
                        f"must be one of {choices}, got {text!r}") from None
    digest = _text(data, "digest", f"{path}.digest")
    if digest and not _DIGEST.fullmatch(digest):
        raise _fail(f"{path}.digest", f"is not a digest (algorithm:hex): {digest!r}")
    os_text = _text(data, "os", f"{path}.os")
    if os_text and not os_text.partition(":")[0]:
        raise _fail(f"{path}.os", f"must be ID or ID:VERSION_ID, got {os_text!r}")
    criteria = RuleCriteria(
        vulnerability_ids=_string_list(data, "vulnerabilityIds", f"{path}.vulnerabilityIds"),
        min_severity=_severity(data, "minSeverity", f"{path}.minSeverity"),
        max_severity=_severity(data, "maxSeverity", f"{path}.maxSeverity"),
        cvss_min=_score(data, "cvssMin", f"{path}.cvssMin"),
        cvss_max=_score(data, "cvssMax", f"{path}.cvssMax"),
        fix_statuses=tuple(dict.fromkeys(fix_statuses)),
        package_names=_string_list(data, "packages", f"{path}.packages"),
        repository_pattern=_text(data, "repository", f"{path}.repository"),
        image_digest=digest,
        os=os_text,
    )
    if (criteria.min_severity is not None and criteria.max_severity is not None
            and criteria.min_severity > criteria.max_severity):
        raise _fail(f"{path}.minSeverity", "is above maxSeverity")
    if (criteria.cvss_min is not None and criteria.cvss_max is not None
            and criteria.cvss_min > criteria.cvss_max):
        raise _fail(f"{path}.cvssMin", "is above cvssMax")
    if criteria.is_empty:
        raise _fail(path, "needs at least one criterion (a rule without one would hide "
                    "every finding)")
    return criteria


def rule_from_json(
    data: object, *, now: datetime, rule_id: str | None = None, check_expiry: bool = True
) -> DisableRule:
    """Validate a rule as the HTTP API receives it; BadRequest names the bad field.

    ``rule_id`` overrides (or supplies) the id; without either, the id is derived from the
    rule's content so posting the same rule twice does not create two. ``created`` defaults to
    ``now``. With ``check_expiry`` an ``expires`` in the past is refused (new rules); stored
    rules are read back with it off.
    """
    if not isinstance(data, dict):
        raise BadRequest("a rule must be a JSON object")
    unknown = sorted(set(data) - _RULE_FIELDS)
    if unknown:
        raise _fail(unknown[0], f"is not a known field (known: {', '.join(sorted(_RULE_FIELDS))})")
    criteria = criteria_from_json(data.get("criteria"))
    justification = _text(data, "justification", "justification", required=True)
    created = _time_field(data.get("created"), "created") or now
    expires = _time_field(data.get("expires"), "expires")
    if check_expiry and expires is not None and expires <= now:
        raise _fail("expires", "is in the past")
    identifier = rule_id or _text(data, "id", "id")
    if identifier and not _RULE_ID.fullmatch(identifier):
        raise _fail("id", "must be 1-128 letters, digits or . _ : -")
    rule = DisableRule(
        id=identifier or "pending",
        justification=justification,
        created=created,
        expires=expires,
        criteria=criteria,
        created_by=_text(data, "createdBy", "createdBy"),
        source=_text(data, "source", "source"),
    )
    if not identifier:
        rule = dataclasses.replace(rule, id=content_id(rule))
    return rule


def content_id(rule: DisableRule) -> str:
    """A stable id from what the rule hides (not when it was made or why)."""
    criteria = criteria_to_json(rule.criteria)
    digest = hashlib.sha256(repr(sorted(criteria.items())).encode()).hexdigest()
    return f"rule-{digest[:16]}"


def _time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def criteria_to_json(criteria: RuleCriteria) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if criteria.vulnerability_ids:
        result["vulnerabilityIds"] = list(criteria.vulnerability_ids)
    if criteria.min_severity is not None:
        result["minSeverity"] = criteria.min_severity.value
    if criteria.max_severity is not None:
        result["maxSeverity"] = criteria.max_severity.value
    if criteria.cvss_min is not None:
        result["cvssMin"] = criteria.cvss_min
    if criteria.cvss_max is not None:
        result["cvssMax"] = criteria.cvss_max
    if criteria.fix_statuses:
        result["fixStatuses"] = [status.value for status in criteria.fix_statuses]
    if criteria.package_names:
        result["packages"] = list(criteria.package_names)
    if criteria.repository_pattern:
        result["repository"] = criteria.repository_pattern
    if criteria.image_digest:
        result["digest"] = criteria.image_digest
    if criteria.os:
        result["os"] = criteria.os
    return result


def rule_to_json(rule: DisableRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "justification": rule.justification,
        "created": _time_text(rule.created),
        "expires": _time_text(rule.expires) if rule.expires is not None else None,
        "createdBy": rule.created_by,
        "source": rule.source,
        "criteria": criteria_to_json(rule.criteria),
    }


# ---------------------------------------------------------------- OpenVEX

OPENVEX_JUSTIFICATIONS = frozenset({
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def rules_from_openvex(document: object, *, now: datetime) -> tuple[DisableRule, ...]:
    """Disable rules from the ``not_affected`` statements of an OpenVEX document.

    OpenVEX v0.2.0 (https://github.com/openvex/spec, OPENVEX-SPEC.md): a statement joins
    products, a vulnerability (``{"name", "aliases"}``; a plain string in v0.0.x) and a status.
    Only ``not_affected`` hides findings; ``affected``, ``fixed`` and ``under_investigation``
    are skipped. Each product becomes one rule for that vulnerability (name and aliases),
    scoped to:

    * the image digest, when the product is an OCI image: a ``pkg:oci/…@sha256:…`` purl (in
      ``@id`` or ``identifiers.purl``), a bare ``sha256:…`` digest, or a ``hashes.sha-256``;
    * the package names of its ``subcomponents`` (purl names), when it lists any;
    * the package name of a non-OCI product purl (``pkg:deb/debian/openssl@…``).

    The spec requires a ``justification`` or an ``impact_statement`` on ``not_affected``; both
    go into the rule's justification. Rule ids are derived from the document id, the statement
    and the product, so importing the same document twice yields the same rules. Statement or
    document timestamps become ``created``.
    """
    if not isinstance(document, dict):
        raise BadRequest("an OpenVEX document must be a JSON object")
    statements = document.get("statements")
    if not isinstance(statements, list):
        raise BadRequest("OpenVEX field 'statements' must be a list")
    document_id = document.get("@id") if isinstance(document.get("@id"), str) else ""
    document_time = _vex_time(document.get("timestamp"), "timestamp") or now
    rules: list[DisableRule] = []
    for index, statement in enumerate(statements):
        path = f"statements[{index}]"
        if not isinstance(statement, dict):
            raise BadRequest(f"OpenVEX {path} must be an object")
        if statement.get("status") != "not_affected":
            continue
        names = _vex_vulnerability(statement.get("vulnerability"), f"{path}.vulnerability")
        justification = _vex_justification(statement, path)
        created = _vex_time(statement.get("timestamp"), f"{path}.timestamp") or document_time
        products = statement.get("products")
        if not isinstance(products, list) or not products:
            raise BadRequest(f"OpenVEX {path}.products must be a non-empty list")
        for product_index, product in enumerate(products):
            product_path = f"{path}.products[{product_index}]"
            scope = _vex_product_scope(product, product_path)
            criteria = RuleCriteria(
                vulnerability_ids=names,
                image_digest=scope.digest,
                package_names=scope.packages,
            )
            key = f"{document_id}\n{index}\n{product_index}\n{criteria_to_json(criteria)}"
            rules.append(DisableRule(
                id="vex-" + hashlib.sha256(key.encode()).hexdigest()[:16],
                justification=justification,
                created=created,
                criteria=criteria,
                source=f"openvex:{document_id}" if document_id else "openvex",
            ))
    return tuple(rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ProductScope:
    digest: str = ""
    packages: tuple[str, ...] = ()


def _vex_time(value: object, path: str) -> datetime | None:
    try:
        return _time_field(value, path)
    except BadRequest as error:
        raise BadRequest(f"OpenVEX {error}") from error


def _vex_vulnerability(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return (value.strip(),)
    if not isinstance(value, dict):
        raise BadRequest(f"OpenVEX {path} must be an object with a name")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(f"OpenVEX {path}.name is required")
    aliases = value.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise BadRequest(f"OpenVEX {path}.aliases must be a list of strings")
    return tuple(dict.fromkeys([name.strip(), *(alias.strip() for alias in aliases if alias)]))


def _vex_justification(statement: Mapping[str, Any], path: str) -> str:
    label = statement.get("justification")
    impact = statement.get("impact_statement")
    if label is not None and label not in OPENVEX_JUSTIFICATIONS:
        raise BadRequest(f"OpenVEX {path}.justification {label!r} is not a VEX justification "
                         f"label")
    if impact is not None and not isinstance(impact, str):
        raise BadRequest(f"OpenVEX {path}.impact_statement must be a string")
    parts = [part.strip() for part in (label, impact) if isinstance(part, str) and part.strip()]
    if not parts:
        raise BadRequest(f"OpenVEX {path}: a not_affected statement needs a justification or "
                         f"an impact_statement")
    return ("VEX not_affected: " + ": ".join(parts))[:MAX_TEXT]


def _purl_parts(purl: str) -> tuple[str, str, str]:
    """``(type, name, version)`` of a purl (spec: pkg:type/namespace/name@version?q#sub)."""
    body = purl[4:].split("#", 1)[0].split("?", 1)[0]
    purl_type, _, rest = body.partition("/")
    path, _, version = rest.partition("@")
    name = path.rsplit("/", 1)[-1]
    return purl_type.lower(), unquote(name), unquote(version)


def _vex_identifiers(component: Mapping[str, Any]) -> list[str]:
    found = []
    if isinstance(component.get("@id"), str):
        found.append(component["@id"].strip())
    identifiers = component.get("identifiers")
    if isinstance(identifiers, dict) and isinstance(identifiers.get("purl"), str):
        found.append(identifiers["purl"].strip())
    return found


def _vex_product_scope(product: object, path: str) -> _ProductScope:
    if isinstance(product, str):  # v0.0.x: products were plain identifiers
        product = {"@id": product}
    if not isinstance(product, dict):
        raise BadRequest(f"OpenVEX {path} must be an object")
    digest = ""
    packages: list[str] = []
    for identifier in _vex_identifiers(product):
        if identifier.startswith("sha256:") and _HEX64.fullmatch(identifier[7:]):
            digest = identifier
        elif identifier.startswith("pkg:"):
            purl_type, name, version = _purl_parts(identifier)
            if purl_type == "oci":
                if version.startswith("sha256:") and _HEX64.fullmatch(version[7:]):
                    digest = version
            elif name:
                packages.append(name)
    hashes = product.get("hashes")
    sha256 = hashes.get("sha-256") if isinstance(hashes, dict) else None
    if not digest and isinstance(sha256, str) and _HEX64.fullmatch(sha256):
        digest = "sha256:" + sha256
    subcomponents = product.get("subcomponents") or []
    if not isinstance(subcomponents, list):
        raise BadRequest(f"OpenVEX {path}.subcomponents must be a list")
    for sub_index, component in enumerate(subcomponents):
        if not isinstance(component, dict):
            raise BadRequest(f"OpenVEX {path}.subcomponents[{sub_index}] must be an object")
        for identifier in _vex_identifiers(component):
            if identifier.startswith("pkg:"):
                _, name, _ = _purl_parts(identifier)
                if name:
                    packages.append(name)
    if not digest and not packages:
        raise BadRequest(f"OpenVEX {path}: no image digest or package purl to scope the rule "
                         f"to (a rule for every image is not imported)")
    return _ProductScope(digest=digest, packages=tuple(dict.fromkeys(packages)))

