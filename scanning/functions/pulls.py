"""Where pulls go. In Azure the pull ledger reads ACR resource logs (Log Analytics); locally the
registry's pull notifications reach the local host, which calls ``record_pulls`` with them.

The pull ledger replaces this body; the signature is the hook: a batch of normalised pull
events (manifest HEAD/GET and blob GETs alike; ``event.is_manifest`` tells them apart, and the
scanner's own pulls are recognisable by ``event.user_agent``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from scanning.events import RegistryEvent

log = logging.getLogger(__name__)


def record_pulls(events: Sequence[RegistryEvent]) -> None:
    for event in events:
        if event.is_manifest:
            log.info("pull %s/%s@%s by %s", event.registry, event.repository, event.digest,
                     event.user_agent)
