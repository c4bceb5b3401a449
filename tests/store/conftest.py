"""A fresh store namespace (its own table and container prefix) per test, on the session's
Azurite; dropped afterwards so tests never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from scanning.local.services import Azurite
from scanning.store import Store


@pytest.fixture()
def store(azurite: Azurite) -> Iterator[Store]:
    namespace = Store.from_connection_string(azurite.connection_string,
                                             prefix="t" + uuid.uuid4().hex[:12])
    namespace.create()
    yield namespace
    namespace.drop()

