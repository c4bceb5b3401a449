"""What the orchestration's activities exchange: frozen dataclasses with a JSON codec.

Durable Functions passes activity inputs and outputs as JSON, so each payload says its own
shape once here; the orchestrator and the activities never index into dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanning.events import RegistryEvent
from scanning.layer_types import LayerInfo
from scanning.model import AssessmentStatus, Platform, ScanTrigger
from scanning.registry import PlatformImage, ResolvedImage, ResolveStatus

INDEX_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})

# The results API starts on-demand scans with this user agent, so they are recorded as manual.
MANUAL_SCAN_USER_AGENT = "acr-scan-api/manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    """One image to scan: what an event or a timer asks for."""

    registry: str
    repository: str
    digest: str
    tag: str = ""
    media_type: str = ""
    trigger: ScanTrigger = ScanTrigger.PUSH
    requested_at: str = ""  # ISO 8601, the event's time

    def to_json(self) -> dict[str, str]:
        return {"registry": self.registry, "repository": self.repository,
                "digest": self.digest, "tag": self.tag, "media_type": self.media_type,
                "trigger": self.trigger.value, "requested_at": self.requested_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanRequest:
        return cls(registry=str(data["registry"]), repository=str(data["repository"]),
                   digest=str(data["digest"]), tag=str(data.get("tag") or ""),
                   media_type=str(data.get("media_type") or ""),
                   trigger=ScanTrigger(data.get("trigger") or ScanTrigger.PUSH.value),
                   requested_at=str(data.get("requested_at") or ""))

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def may_be_index_child(self) -> bool:
        """Untagged manifest pushes: what pushing an index sends first, once per platform."""
        return (self.trigger is ScanTrigger.PUSH and not self.tag
                and self.media_type not in INDEX_MEDIA_TYPES)


def trigger_of(event: RegistryEvent) -> ScanTrigger:
    """ACR delivers `az acr import` as an ImagePushed event; its user agent names the importer."""
    if event.user_agent == MANUAL_SCAN_USER_AGENT:
        return ScanTrigger.MANUAL
    return ScanTrigger.IMPORT if "import" in event.user_agent.lower() else ScanTrigger.PUSH


def request_from_event(event: RegistryEvent) -> ScanRequest:
    return ScanRequest(registry=event.registry, repository=event.repository,
                       digest=event.digest, tag=event.tag, media_type=event.media_type,
                       trigger=trigger_of(event), requested_at=event.time)


def _layer_to_json(layer: LayerInfo) -> dict[str, Any]:
    return {"digest": layer.digest, "size": layer.size, "media_type": layer.media_type,
            "instruction": layer.instruction}


def _layer_from_json(data: Mapping[str, Any]) -> LayerInfo:
    return LayerInfo(digest=str(data["digest"]), size=int(data["size"]),
                     media_type=str(data.get("media_type") or ""),
                     instruction=str(data.get("instruction") or ""))


def resolved_to_json(resolved: ResolvedImage) -> dict[str, Any]:
    return {
        "reference": resolved.reference, "digest": resolved.digest,
        "media_type": resolved.media_type,
        "platforms": [
            {"platform": str(image.platform), "manifest_digest": image.manifest_digest,
             "media_type": image.media_type, "config_digest": image.config_digest,
             "config_size": image.config_size,
             "layers": [_layer_to_json(layer) for layer in image.layers]}
            for image in resolved.platforms
        ],
    }


def resolved_from_json(data: Mapping[str, Any]) -> ResolvedImage:
    return ResolvedImage(
        reference=data["reference"], digest=data["digest"], media_type=data["media_type"],
        status=ResolveStatus.IMAGE,
        platforms=tuple(
            PlatformImage(platform=Platform.parse(item["platform"]),
                          manifest_digest=item["manifest_digest"],
                          media_type=item["media_type"], config_digest=item["config_digest"],
                          config_size=int(item.get("config_size") or 0),
                          layers=tuple(_layer_from_json(layer) for layer in item["layers"]))
            for item in data["platforms"]
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOutcome:
    """How a scan ended: what the orchestration returns."""

    status: AssessmentStatus
    reason: str
    scan_id: str
    findings: int = 0  # active
    disabled: int = 0
    billed: bool = False
    notified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason, "findings": self.findings,
                "disabled": self.disabled, "billed": self.billed, "notified": self.notified,
                "scan_id": self.scan_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanOutcome:
        return cls(status=AssessmentStatus(data["status"]), reason=str(data["reason"]),
                   scan_id=str(data["scan_id"]), findings=int(data["findings"]),
                   disabled=int(data["disabled"]), billed=bool(data["billed"]),
                   notified=bool(data["notified"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanStep:
    """The input of a scan's activities: the request and the scan's history id."""

    request: ScanRequest
    scan_id: str

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "scan_id": self.scan_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanStep:
        return cls(request=ScanRequest.from_json(data["request"]), scan_id=str(data["scan_id"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """``prepare_scan``'s answer: the scan ended already (``outcome``), or the resolved image
    and the layers the layer cache does not have yet."""

    outcome: ScanOutcome | None = None
    resolved: ResolvedImage | None = None
    layers: tuple[LayerInfo, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.outcome is not None:
            return {"done": True, "outcome": self.outcome.to_json()}
        assert self.resolved is not None
        return {"done": False, "resolved": resolved_to_json(self.resolved),
                "layers": [_layer_to_json(layer) for layer in self.layers]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prepared:
        if data["done"]:
            return cls(outcome=ScanOutcome.from_json(data["outcome"]))
        return cls(resolved=resolved_from_json(data["resolved"]),
                   layers=tuple(_layer_from_json(layer) for layer in data["layers"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerStep:
    """``analyze_layer``'s input: one layer of the request's image."""

    request: ScanRequest
    layer: LayerInfo

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "layer": _layer_to_json(self.layer)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LayerStep:
        return cls(request=ScanRequest.from_json(data["request"]),
                   layer=_layer_from_json(data["layer"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerOutcome:
    """A layer read into the cache, or why it could not be read."""

    digest: str
    error: str = ""

    def to_json(self) -> dict[str, str]:
        return {"digest": self.digest, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LayerOutcome:
        return cls(digest=str(data["digest"]), error=str(data.get("error") or ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessStep:
    """``assess_image``'s input: the resolved image and the layers that could not be read."""

    step: ScanStep
    resolved: ResolvedImage
    layer_errors: tuple[LayerOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "resolved": resolved_to_json(self.resolved),
                "layer_errors": [outcome.to_json() for outcome in self.layer_errors]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AssessStep:
        return cls(step=ScanStep.from_json(data), resolved=resolved_from_json(data["resolved"]),
                   layer_errors=tuple(LayerOutcome.from_json(item)
                                      for item in data["layer_errors"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailStep:
    """``fail_scan``'s input: a scan whose activity failed for good."""

    step: ScanStep
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailStep:
        return cls(step=ScanStep.from_json(data), reason=str(data["reason"]))
