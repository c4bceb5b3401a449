"""The verdict: the one place an image's status, reason and disabled findings are decided.

Pure: no I/O, no clock. Every path that gives a verdict calls it the same way: the scan activity
and the weekly rescan (``assess_inventories``, from inventories and their match results), a rule
created or deleted and an API read with rules that expired since (``reassess``, from the stored
per-platform results), and the CLI's ``scan``.

A platform's *analysis* is what reading the image concluded before any rule: ``failed`` when a
layer could not be read, ``unsupported`` when nothing could be assessed (no packages at all, or
no advisory data for what was found and no finding in the rest), ``partial`` when some files
could not be read and nothing was found in the rest, else the match's ``unhealthy`` or
``healthy``. Rules then disable findings: a platform with no active finding left is ``healthy``
unless its analysis was ``partial`` (a clean partial read proves nothing) or an outcome that no
rule changes (failed, unsupported, not applicable). The image is as bad as its worst platform.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from scanning.inventory import ImageInventory, InventoryStatus
from scanning.matching import MatchResult
from scanning.model import (
    AssessmentStatus,
    Finding,
    FindingCounts,
    PlatformFindings,
    count_findings,
)
from scanning.rules import DisableRule, ImageContext, apply_rules

NO_PACKAGES_REASON = (
    "no packages found: no OS package database and no language package manifests"
)

# Outcomes of the analysis that no disable rule changes.
_FINAL_OUTCOMES = frozenset({
    AssessmentStatus.NOT_APPLICABLE, AssessmentStatus.FAILED, AssessmentStatus.UNSUPPORTED,
})

# Worst first: an image is as bad as its worst platform.
_STATUS_ORDER = (AssessmentStatus.FAILED, AssessmentStatus.UNHEALTHY, AssessmentStatus.PARTIAL,
                 AssessmentStatus.UNSUPPORTED, AssessmentStatus.HEALTHY,
                 AssessmentStatus.NOT_APPLICABLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRef:
    """The image a verdict is for: what rules may scope by."""

    registry: str
    repository: str
    digest: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """An image's verdict: one entry per platform (findings with ``disabled_by`` set, status,
    reason), the worst platform's status and analysis, and the counts over all platforms."""

    platforms: tuple[PlatformFindings, ...]
    status: AssessmentStatus
    analysis: AssessmentStatus
    reason: str
    counts: FindingCounts

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(finding for result in self.platforms for finding in result.findings)

    @property
    def active(self) -> int:
        return self.counts.active_total

    @property
    def disabled(self) -> int:
        return self.counts.disabled_total


def worst(statuses: Iterable[AssessmentStatus]) -> AssessmentStatus:
    """The worst of ``statuses``; ``not_applicable`` when there is none."""
    present = set(statuses)
    return next((status for status in _STATUS_ORDER if status in present),
                AssessmentStatus.NOT_APPLICABLE)


def platform_analysis(inventory: ImageInventory,
                      match: MatchResult | None) -> tuple[AssessmentStatus, str]:
    """A platform's status before rules, and why. ``match`` is None for a failed inventory
    (nothing to match)."""
    errors = "; ".join(inventory.errors)
    if inventory.status is InventoryStatus.FAILED or match is None:
        return AssessmentStatus.FAILED, errors or "the image could not be read"
    notes = [match.reason] if match.reason else []
    if inventory.errors:
        notes.append(f"some files could not be analyzed: {errors}")
    elif inventory.status is InventoryStatus.PARTIAL and inventory.warnings:
        # Entries skipped in a file that was read: the warnings name each.
        count = len(inventory.warnings)
        notes.append(f"some files were read only in part ({count} warning"
                     f"{'' if count == 1 else 's'}): {inventory.warnings[0]}")
    partial = inventory.status is InventoryStatus.PARTIAL
    if not inventory.packages and not match.findings:
        if partial:
            return AssessmentStatus.PARTIAL, "; ".join(
                [NO_PACKAGES_REASON.replace("no packages found", "no packages read"), *notes])
        return AssessmentStatus.UNSUPPORTED, "; ".join([NO_PACKAGES_REASON, *notes])
    status = match.status
    if partial and status is AssessmentStatus.HEALTHY:
        status = AssessmentStatus.PARTIAL
    return status, "; ".join(notes)


def ruled_status(findings: Iterable[Finding], analysis: AssessmentStatus) -> AssessmentStatus:
    """A platform's status once rules have set ``disabled_by`` on its findings."""
    if analysis in _FINAL_OUTCOMES:
        return analysis
    if any(not finding.disabled_by for finding in findings):
        return AssessmentStatus.UNHEALTHY
    return AssessmentStatus.PARTIAL if analysis is AssessmentStatus.PARTIAL else (
        AssessmentStatus.HEALTHY)


def assess_inventories(inventories: Sequence[ImageInventory],
                       matches: Sequence[MatchResult | None], *, image: ImageRef,
                       rules: Iterable[DisableRule], now: datetime) -> Verdict:
    """The verdict of freshly read (or re-matched) inventories: ``matches[i]`` is the match
    result of ``inventories[i]`` (None for a failed one)."""
    platforms = []
    for inventory, match in zip(inventories, matches, strict=True):
        analysis, reason = platform_analysis(inventory, match)
        platforms.append(PlatformFindings(
            platform=str(inventory.platform), manifest_digest=inventory.manifest_digest,
            os=inventory.os, findings=match.findings if match is not None else (),
            analysis=analysis, reason=reason,
            warnings=(*inventory.warnings, *(match.warnings if match is not None else ()))))
    return reassess(platforms, image=image, rules=rules, now=now)


def reassess(results: Iterable[PlatformFindings], *, image: ImageRef,
             rules: Iterable[DisableRule], now: datetime,
             fallback_analysis: AssessmentStatus = AssessmentStatus.HEALTHY) -> Verdict:
    """Apply ``rules`` as of ``now`` to per-platform results and decide every status.

    ``fallback_analysis`` stands for a platform stored without its own analysis (documents
    written before it was kept per platform carry only the image's)."""
    rule_list = tuple(rules)
    platforms = []
    for result in results:
        context = ImageContext(registry=image.registry, repository=image.repository,
                               digest=image.digest, manifest_digest=result.manifest_digest,
                               os=result.os)
        findings = apply_rules(rule_list, result.findings, context, now)
        analysis = result.analysis or fallback_analysis
        platforms.append(dataclasses.replace(
            result, findings=findings, analysis=analysis,
            status=ruled_status(findings, analysis)))
    return verdict_of(platforms)


def verdict_of(platforms: Sequence[PlatformFindings]) -> Verdict:
    """The image verdict of platforms whose statuses are decided."""
    reasons = [f"{result.platform}: {result.reason}" if result.platform else result.reason
               for result in platforms if result.reason]
    return Verdict(
        platforms=tuple(platforms),
        status=worst(result.status or AssessmentStatus.NOT_APPLICABLE for result in platforms),
        analysis=worst(result.analysis or AssessmentStatus.NOT_APPLICABLE
                       for result in platforms),
        reason="; ".join(reasons),
        counts=count_findings(finding for result in platforms for finding in result.findings))


def outcome(status: AssessmentStatus, reason: str) -> Verdict:
    """The verdict of an image that ends without inventories: not applicable, unsupported or
    failed before any platform was read."""
    return Verdict(platforms=(), status=status, analysis=status, reason=reason,
                   counts=count_findings(()))
