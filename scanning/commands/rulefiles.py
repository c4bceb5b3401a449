"""Disable rules from files for ``scan --vex`` and ``scan --ignore-file``.

They become the same ``DisableRule`` values the app stores, parsed by the same functions
(``rules_from_openvex``, ``rule_from_json``), and ``assessment.assess_inventories`` applies them
exactly as it does in the app: a hidden finding is listed as disabled and no longer counts.

An ignore file is either acr-scan rules JSON (one rule as ``POST rules`` takes it, or a list of
them) or ``.trivyignore`` lines: one advisory id per line, ``#`` comments, and Trivy's optional
``exp:YYYY-MM-DD`` after the id (the rule stops applying that day).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from scanning.errors import BadRequest
from scanning.rules import DisableRule, rule_from_json, rules_from_openvex


def vex_rules(path: Path, *, now: datetime) -> tuple[DisableRule, ...]:
    try:
        document = json.loads(path.read_bytes())
    except ValueError as error:
        raise BadRequest(f"{path}: not an OpenVEX JSON document: {error}") from error
    try:
        return rules_from_openvex(document, now=now)
    except BadRequest as error:
        raise BadRequest(f"{path}: {error}") from error


def ignore_rules(path: Path, *, now: datetime) -> tuple[DisableRule, ...]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(("{", "[")):
        return _json_rules(path, text, now=now)
    return _trivyignore_rules(path, text, now=now)


def _json_rules(path: Path, text: str, *, now: datetime) -> tuple[DisableRule, ...]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise BadRequest(f"{path}: not valid JSON: {error}") from error
    items = document if isinstance(document, list) else [document]
    rules = []
    for number, item in enumerate(items):
        try:
            # Expired rules are kept and simply stop applying, as stored rules do in the app.
            rules.append(rule_from_json(item, now=now, check_expiry=False))
        except BadRequest as error:
            where = f"{path}[{number}]" if isinstance(document, list) else str(path)
            raise BadRequest(f"{where}: {error}") from error
    return tuple(rules)


def _trivyignore_rules(path: Path, text: str, *, now: datetime) -> tuple[DisableRule, ...]:
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        expires = ""
        for word in words[1:]:
            if word.startswith("exp:"):
                try:
                    day = datetime.strptime(word[4:], "%Y-%m-%d").replace(tzinfo=UTC)
                except ValueError as error:
                    raise BadRequest(f"{path}:{number}: {word!r} is not exp:YYYY-MM-DD") from error
                expires = day.isoformat().replace("+00:00", "Z")
        rule = {"id": f"ignore:{words[0]}", "justification": f"listed in {path.name}",
                "criteria": {"vulnerabilityIds": [words[0]]}, "expires": expires or None}
        try:
            rules.append(rule_from_json(rule, now=now, check_expiry=False))
        except BadRequest as error:
            raise BadRequest(f"{path}:{number}: {error}") from error
    return tuple(rules)
