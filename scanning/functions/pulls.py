"""Where pulls go locally: the local host hands the registry's pull notifications to
``record_pulls`` (in Azure, the ``sync_pulls`` timer reads ACR resource logs instead)."""

from __future__ import annotations

from collections.abc import Sequence

from scanning.events import RegistryEvent
from scanning.service import scan
from scanning.service.context import services


def record_pulls(events: Sequence[RegistryEvent]) -> None:
    scan.record_pulls(services(), events)
