"""Disable rules in force: read from the store, and their effect on stored verdicts.

A rule created or deleted re-decides the verdicts it can change (``reapply_rules``); an API
read re-decides with the rules as of the read, so a rule that expired since the last write
no longer hides anything (``current_verdict``). Both go through ``scanning.assessment``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from scanning.assessment import ImageRef, Verdict, reassess
from scanning.errors import BadRequest, StoreError
from scanning.model import PlatformFindings
from scanning.rules import DisableRule, rule_from_json, rule_to_json
from scanning.store import ImageFilter, ImageRecord, Store
from scanning.store.findings import Assessment

log = logging.getLogger(__name__)


def _stored_rule(document: dict[str, object]) -> DisableRule:
    try:
        return rule_from_json(document, now=datetime.now(UTC), check_expiry=False)
    except BadRequest as error:
        raise StoreError(f"stored rule {document.get('id')!r} is malformed: {error}") from error


def load_rules(store: Store) -> tuple[DisableRule, ...]:
    """Every rule, expired ones too (the verdict checks expiry), in id order."""
    return tuple(sorted((_stored_rule(document) for document in store.rules.list()),
                        key=lambda rule: rule.id))


def get_rule(store: Store, rule_id: str) -> DisableRule:
    return _stored_rule(store.rules.get(rule_id))


def create_rule(store: Store, rule: DisableRule) -> bool:
    """Store a new rule; False when a rule with its id exists (nothing written)."""
    return store.rules.create(rule.id, rule_to_json(rule))


def put_rule(store: Store, rule: DisableRule) -> None:
    store.rules.put(rule.id, rule_to_json(rule))


def image_ref(image: ImageRecord) -> ImageRef:
    return ImageRef(registry=image.registry, repository=image.repository, digest=image.digest)


def current_verdict(image: ImageRecord, results: tuple[PlatformFindings, ...],
                    rules: tuple[DisableRule, ...], now: datetime) -> Verdict | None:
    """The image's verdict with ``rules`` as of ``now``; None while it was never assessed.

    Platforms stored before their own analysis was kept take the image's. An assessment
    without platforms (not applicable, unsupported or failed before any was read) keeps its
    stored status and reason."""
    if image.status is None:
        return None
    analysis = image.analysis_status or image.status
    if not results:
        return Verdict(platforms=(), status=image.status, analysis=analysis,
                       reason=image.reason, counts=image.counts)
    return reassess(results, image=image_ref(image), rules=rules, now=now,
                    fallback_analysis=analysis)


def reapply_to_image(store: Store, image: ImageRecord, rules: tuple[DisableRule, ...],
                     now: datetime) -> ImageRecord:
    """Re-decide a stored verdict under ``rules`` (no rescan) and store it the way a scan
    does, with the same ``assessed_at``: a scan that lands meanwhile wins."""
    verdict = current_verdict(
        image, store.findings_of(image.registry, image.repository, image.digest), rules, now)
    if verdict is None or image.assessed_at is None or not verdict.platforms:
        return image
    return store.save_assessment(image.registry, image.repository, image.digest, Assessment(
        status=verdict.status, analysis_status=verdict.analysis,
        assessed_at=image.assessed_at, results=verdict.platforms, reason=verdict.reason,
        analyzer_version=image.analyzer_version, index_version=image.index_version,
        matcher_version=image.matcher_version, scan_id=image.last_scan_id,
        match_keys=image.match_keys,
    ))


def reapply_rules(store: Store, now: datetime, *, created: bool) -> int:
    """Store the effect of the current rules on every assessed image; how many changed.

    After a rule is created only images with active findings can change (``created``), after
    one is deleted only images with disabled findings, so the others are not read. The cost
    is one read per candidate image, paid by the rule request: fine for thousands of images,
    a job for a queue beyond that.
    """
    rules = load_rules(store)
    changed = 0
    for image in store.images.iter_all(ImageFilter(include_deleted=True)):
        affected = image.counts.active_total if created else image.counts.disabled_total
        if not affected or image.status is None or image.assessed_at is None:
            continue
        updated = reapply_to_image(store, image, rules, now)
        if updated.counts != image.counts or updated.status != image.status:
            changed += 1
    log.info("disable rules re-applied: %d image(s) changed", changed)
    return changed
