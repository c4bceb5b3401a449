"""Severity and fix status of one advisory for one affected package: pure functions, no I/O.

Severity comes from the vendor's own rating when the record carries one, because the vendor
rates the flaw as it affects their build (Debian urgency, Ubuntu priority, the GitHub/Bitnami
rating in ``database_specific.severity``); otherwise from the CVSS vectors the record carries
(OSV ``severity[]`` of type ``CVSS_V2``/``CVSS_V3``/``CVSS_V4``), scored with the ``cvss``
library. The highest CVSS version present decides (v4 over v3.x over v2), since newer versions
are what the vendor most recently published. Both the vendor rating and every CVSS score and
vector are kept in the finding.

Where the vendor states sit in OSV records (read from the real records in
``../shared/testdata/advisories/``):

* Ubuntu: record-level ``severity[]`` with ``type: "Ubuntu"`` and ``score`` one of
  ``negligible|low|medium|high|critical`` (``untriaged`` when not rated yet);
* Debian (``DEBIAN-CVE-*``): ``affected[].ecosystem_specific.urgency``: ``unimportant``,
  ``low``, ``medium``, ``high``, ``not yet assigned``, ``end-of-life``;
* GHSA, Bitnami, Root.io: ``database_specific.severity`` (``LOW|MODERATE|HIGH|CRITICAL``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cvss

from scanning.model import CvssScore, FixStatus, Severity

logger = logging.getLogger(__name__)

# Vendor words -> our ordered severity. "moderate" is GitHub's word for medium; "important"
# is Red Hat's and SUSE's word for high.
_VENDOR_WORDS: dict[str, Severity] = {
    "negligible": Severity.NEGLIGIBLE,
    "unimportant": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "critical": Severity.CRITICAL,
}

# Vendor words that say "we decided not to fix this", by fix status. Debian's tracker writes
# ``unimportant`` as an urgency and ``end-of-life`` for releases out of security support;
# ``no-dsa``/``ignored``/``postponed`` are its notes for minor issues it will not ship a DSA for.
_VENDOR_STATES: dict[str, FixStatus] = {
    "unimportant": FixStatus.UNIMPORTANT,
    "end-of-life": FixStatus.END_OF_LIFE,
    "eol": FixStatus.END_OF_LIFE,
    "no-dsa": FixStatus.WONT_FIX,
    "ignored": FixStatus.WONT_FIX,
    "postponed": FixStatus.WONT_FIX,
    "will not fix": FixStatus.WONT_FIX,
    "wont-fix": FixStatus.WONT_FIX,
    "won't fix": FixStatus.WONT_FIX,
}

_VENDOR_KEYS = ("urgency", "severity", "priority")
_STATE_KEYS = ("urgency", "status", "state", "fix_state", "resolution")

_CVSS_ORDER = {"CVSS_V4": 3, "CVSS_V3": 2, "CVSS_V2": 1}


def cvss_scores(severity_entries: Sequence[Mapping[str, Any]]) -> tuple[CvssScore, ...]:
    """Every CVSS vector in an OSV ``severity[]`` list, scored; bad vectors are skipped."""
    scores: list[CvssScore] = []
    seen: set[str] = set()
    for entry in severity_entries:
        kind = str(entry.get("type", ""))
        vector = str(entry.get("score", "")).strip()
        if kind not in _CVSS_ORDER or not vector or vector in seen:
            continue
        seen.add(vector)
        score = score_vector(kind, vector)
        if score is not None:
            scores.append(score)
    scores.sort(key=score_order)
    return tuple(scores)


def score_order(score: CvssScore) -> tuple[int, float]:
    """Sort key of scores: the highest CVSS version first, then the highest score."""
    return -_version_rank(score.version), -score.base_score


def _version_rank(version: str) -> int:
    return {"4.0": 4, "3.1": 3, "3.0": 3, "2.0": 2}.get(version, 0)


@functools.lru_cache(maxsize=65536)
def score_vector(kind: str, vector: str) -> CvssScore | None:
    """Base score of one vector (CVSS v2, v3.0/3.1 or v4.0 specification); None if invalid.

    Cached: the ``cvss`` library takes ~100 us per vector, and one advisory's vector is scored
    again for every package and image it matches.
    """
    try:
        if kind == "CVSS_V4":
            v4 = cvss.CVSS4(vector)
            base, version = float(v4.base_score), "4.0"
        elif kind == "CVSS_V3":
            v3 = cvss.CVSS3(vector)
            base = float(v3.scores()[0])
            version = "3.0" if vector.startswith("CVSS:3.0/") else "3.1"
        else:
            v2 = cvss.CVSS2(vector.removeprefix("(").removesuffix(")"))
            base, version = float(v2.scores()[0]), "2.0"
    except (cvss.CVSSError, ValueError, KeyError, IndexError) as error:
        logger.debug("skipping invalid %s vector %r: %s", kind, vector, error)
        return None
    return CvssScore(
        version=version, vector=vector, base_score=base, severity=qualitative(version, base)
    )


def qualitative(version: str, base: float) -> Severity:
    """The specification's qualitative rating of a base score.

    v3.x/v4.0 (FIRST CVSS v3.1 spec, section 5): 0 none, 0.1-3.9 low, 4.0-6.9 medium,
    7.0-8.9 high, 9.0-10.0 critical. v2 (NVD's use of the v2 guide): 0-3.9 low,
    4.0-6.9 medium, 7.0-10.0 high; v2 has no critical.
    """
    if base <= 0.0:
        return Severity.NEGLIGIBLE
    if base < 4.0:
        return Severity.LOW
    if base < 7.0:
        return Severity.MEDIUM
    if version == "2.0" or base < 9.0:
        return Severity.HIGH
    return Severity.CRITICAL


def vendor_rating(
    record_severity: Sequence[Mapping[str, Any]],
    record_specific: Mapping[str, Any],
    affected_specific: Sequence[Mapping[str, Any]],
) -> str:
    """The vendor's own rating word, as written, or "" when the record has none.

    Affected-level data (Debian urgency for that release) wins over record-level data
    (Ubuntu priority, GitHub's rating), since it is the most specific.
    """
    for specific in affected_specific:
        for key in _VENDOR_KEYS:
            word = _rating_word(specific.get(key))
            if word:
                return word
    for entry in record_severity:
        kind = str(entry.get("type", ""))
        if kind not in _CVSS_ORDER:
            word = _rating_word(entry.get("score"))
            if word:
                return word
    return _rating_word(record_specific.get("severity"))


def _rating_word(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in _VENDOR_WORDS:
        return value.strip()
    return ""


def decide_severity(vendor: str, scores: Sequence[CvssScore]) -> Severity:
    """Vendor rating if it is one we know, else the highest-version CVSS rating."""
    if vendor:
        return _VENDOR_WORDS.get(vendor.lower(), Severity.UNKNOWN)
    if scores:
        return scores[0].severity
    return Severity.UNKNOWN


def fix_status(fixed_version: str, affected_specific: Sequence[Mapping[str, Any]]) -> FixStatus:
    """``fixed`` when a fixed version exists; else a vendor state the record states; else
    ``not_fixed``."""
    if fixed_version:
        return FixStatus.FIXED
    for specific in affected_specific:
        for key in _STATE_KEYS:
            value = specific.get(key)
            if isinstance(value, str):
                state = _VENDOR_STATES.get(value.strip().lower())
                if state is not None:
                    return state
    return FixStatus.NOT_FIXED
