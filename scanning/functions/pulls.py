"""Where pulls go locally: the local host hands the registry's pull notifications to
``record_pulls`` (in Azure, the ``sync_pulls`` timer reads ACR resource logs instead)."""

from __future__ import annotations

from collections.abc import Sequence

from scanning.events import RegistryEvent
from scanning.service import record_pulls as record_pulls_in_ledger
from scanning.service import services


def record_pulls(events: Sequence[RegistryEvent]) -> None:
    record_pulls_in_ledger(services(), events)
