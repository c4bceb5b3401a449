"""One normaliser for registry events.

Three shapes arrive: Event Grid schema (``eventType`` + ``data``), CloudEvents schema
(``type`` + ``data``; the ``specversion`` key is spelled ``specVersion`` in some real samples, so
it is not relied on), and the Distribution registry's notification envelope
(``{"events": [...]}``), whose events have the same shape as Event Grid ``data``. All become
``RegistryEvent``. ``to_event_grid`` makes, from a Distribution event, the Event Grid event ACR
would send, so the local host delivers exactly what Azure delivers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scanning.errors import BadRequest

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
EVENT_TYPES = (PUSHED, DELETED)
_ACTION_BY_TYPE = {PUSHED: "push", DELETED: "delete"}
_TYPE_BY_ACTION = {action: event_type for event_type, action in _ACTION_BY_TYPE.items()}

# Distribution sends pushes/pulls of blobs with this media type; they are not images.
BLOB_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryEvent:
    action: str  # push | delete | pull | mount
    registry: str  # login server host, e.g. myreg.azurecr.io or 127.0.0.1:5000
    repository: str
    digest: str
    tag: str
    media_type: str
    user_agent: str
    time: str
    event_id: str = ""

    @property
    def is_manifest(self) -> bool:
        return bool(self.digest) and self.media_type != BLOB_MEDIA_TYPE


def _str(mapping: dict[str, Any], key: str) -> str:
    value = mapping.get(key, "")
    return value if isinstance(value, str) else ""


def _from_data(data: Any, *, default_action: str = "", time: str = "") -> RegistryEvent:
    if not isinstance(data, dict):
        raise BadRequest("event data must be an object")
    target = data.get("target")
    request = data.get("request") or {}
    if not isinstance(target, dict) or not isinstance(request, dict):
        raise BadRequest("event data has no target object")
    repository = _str(target, "repository")
    if not repository:
        raise BadRequest("event target has no repository")
    # An event that carries no time is recorded at its receipt: said here, once, so a
    # missing time never passes silently through the rest of the pipeline. A malformed one is
    # refused here, not in the scan it would start.
    moment = _str(data, "timestamp") or time or datetime.now(UTC).isoformat()
    try:
        parse_time(moment)
    except ValueError as error:
        raise BadRequest(f"event time {moment[:64]!r} is not an ISO 8601 time") from error
    return RegistryEvent(
        action=_str(data, "action") or default_action,
        registry=_str(request, "host"),
        repository=repository,
        digest=_str(target, "digest"),
        tag=_str(target, "tag"),
        media_type=_str(target, "mediaType"),
        user_agent=_str(request, "useragent"),
        time=moment,
        event_id=_str(data, "id"),
    )


def normalise(payload: Any) -> list[RegistryEvent]:
    """Turn any of the three shapes (or a list of Event Grid/CloudEvents events) into events."""
    if isinstance(payload, list):
        return [event for item in payload for event in normalise(item)]
    if not isinstance(payload, dict):
        raise BadRequest("event payload must be a JSON object or array")
    if "events" in payload and isinstance(payload["events"], list):
        return [_from_data(item) for item in payload["events"]]
    event_type = payload.get("eventType") or payload.get("type")
    if event_type is not None:
        if event_type not in _ACTION_BY_TYPE:
            raise BadRequest(f"unsupported event type {event_type!r}")
        time = _str(payload, "eventTime") or _str(payload, "time")
        action = _ACTION_BY_TYPE[event_type]
        return [_from_data(payload.get("data"), default_action=action, time=time)]
    if "target" in payload:
        return [_from_data(payload)]
    raise BadRequest("not a registry event: no eventType, type, events or target")


def to_event_grid(distribution_event: dict[str, Any], *, topic: str) -> dict[str, Any] | None:
    """The Event Grid event ACR would send for a Distribution push/delete, or None.

    ACR sends events for manifests only: blob pushes, mounts and pulls produce none.
    """
    action = distribution_event.get("action")
    target = distribution_event.get("target") or {}
    if action not in _TYPE_BY_ACTION or target.get("mediaType") == BLOB_MEDIA_TYPE:
        return None
    event_id = str(distribution_event.get("id") or uuid.uuid4())
    data_target = {
        key: target[key]
        for key in ("mediaType", "size", "digest", "length", "repository", "tag")
        if key in target
    }
    request = distribution_event.get("request") or {}
    repository = str(target.get("repository", ""))
    tag = target.get("tag")
    return {
        "id": event_id,
        "topic": topic,
        "subject": f"{repository}:{tag}" if tag else repository,
        "eventType": _TYPE_BY_ACTION[action],
        "data": {
            "id": event_id,
            "timestamp": distribution_event.get("timestamp", ""),
            "action": action,
            "target": data_target,
            "request": {
                key: request[key] for key in ("id", "host", "method", "useragent") if key in request
            },
        },
        "dataVersion": "2.0",
        "metadataVersion": "1",
        "eventTime": distribution_event.get("timestamp", ""),
    }


def parse_time(text: str) -> datetime:
    """ISO 8601 with up to nanoseconds (Distribution) or 7 digits (ACR); naive means UTC.
    ValueError for an empty or malformed time (a fraction of anything but ASCII digits
    included: it is not cleaned into a different time)."""
    if not text:
        raise ValueError("no time given")
    if not text.isascii():
        raise ValueError(f"malformed time {text[:64]!r}")
    head, dot, tail = text.rstrip("Z").partition(".")
    offset = ""
    for sign in ("+", "-"):
        if sign in tail:
            tail, _, rest = tail.partition(sign)
            offset = sign + rest
    if dot and not tail.isdigit():
        raise ValueError(f"malformed fraction of a second in {text[:64]!r}")
    fraction = tail[:6]
    cleaned = (f"{head}.{fraction}" if dot else head) + offset
    parsed = datetime.fromisoformat(cleaned)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
