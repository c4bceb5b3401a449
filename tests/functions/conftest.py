"""Fixtures shared by the function tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from scanning.functions import api as api_functions
from scanning.local.services import Azurite
from scanning.store import Store


@pytest.fixture()
def store(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store of its own in Azurite, as the API functions' ``store()``."""
    namespace = Store.from_connection_string(azurite.connection_string,
                                             prefix="f" + uuid.uuid4().hex[:12])
    namespace.create()
    monkeypatch.setattr(api_functions, "store", lambda: namespace)
    yield namespace
    namespace.drop()
