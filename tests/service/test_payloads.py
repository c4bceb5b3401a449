"""What the scan's activities exchange survives its JSON round trip (Durable Functions passes
activity inputs and outputs as JSON)."""

from __future__ import annotations

from scanning.layer_types import LayerInfo
from scanning.model import AssessmentStatus, Platform, ScanTrigger
from scanning.registry import PlatformImage, ResolvedImage, ResolveStatus
from scanning.service.payloads import (
    AssessStep,
    FailStep,
    LayerOutcome,
    LayerStep,
    Prepared,
    ScanOutcome,
    ScanRequest,
    ScanStep,
)

REQUEST = ScanRequest(registry="r.io", repository="team/app", digest="sha256:" + "a" * 64,
                      tag="1.0", media_type="application/vnd.oci.image.index.v1+json",
                      trigger=ScanTrigger.IMPORT, requested_at="2026-12-01T00:00:00+00:00")
LAYER = LayerInfo(digest="sha256:" + "b" * 64, size=10, media_type="m", instruction="RUN x")
RESOLVED = ResolvedImage(
    reference="r.io/team/app@sha256:" + "a" * 64, digest="sha256:" + "a" * 64,
    media_type="application/vnd.oci.image.index.v1+json", status=ResolveStatus.IMAGE,
    platforms=(PlatformImage(platform=Platform.parse("linux/arm64/v8"),
                             manifest_digest="sha256:" + "c" * 64, media_type="m",
                             config_digest="sha256:" + "d" * 64, config_size=7,
                             layers=(LAYER,)),))
STEP = ScanStep(request=REQUEST, scan_id="20261201T000000000000Z-0123abcd")


def test_every_payload_round_trips() -> None:
    payloads = [
        REQUEST, STEP, Prepared(resolved=RESOLVED, layers=(LAYER,)),
        Prepared(outcome=ScanOutcome(status=AssessmentStatus.NOT_APPLICABLE, reason="helm",
                                     scan_id=STEP.scan_id)),
        LayerStep(request=REQUEST, layer=LAYER), LayerOutcome(digest=LAYER.digest, error="x"),
        AssessStep(step=STEP, resolved=RESOLVED,
                   layer_errors=(LayerOutcome(digest=LAYER.digest, error="truncated"),)),
        FailStep(step=STEP, reason="gone"),
        ScanOutcome(status=AssessmentStatus.UNHEALTHY, reason="", scan_id=STEP.scan_id,
                    findings=3, disabled=1, billed=True, notified=True),
    ]
    assert [type(payload).from_json(payload.to_json()) for payload in payloads] == payloads


def test_an_untagged_manifest_push_may_be_an_index_child() -> None:
    untagged = ScanRequest(registry="r.io", repository="a", digest="sha256:" + "e" * 64,
                           media_type="application/vnd.oci.image.manifest.v1+json")
    assert (untagged.may_be_index_child, REQUEST.may_be_index_child) == (True, False)
