"""The storage layout version is written by a new store and checked when one opens."""

from __future__ import annotations

import uuid

import pytest

from scanning.errors import ConfigError
from scanning.local.services import Azurite
from scanning.store import Store
from scanning.store.schema import (
    DASHBOARD_SECRET_ROW,
    PARTITION,
    ROW,
    SCHEMA_VERSION,
    SECRET_PARTITION,
)

pytestmark = pytest.mark.integration


def _store(azurite: Azurite) -> Store:
    return Store.from_connection_string(azurite.connection_string,
                                        prefix="t" + uuid.uuid4().hex[:12])


def test_a_new_store_records_its_layout_and_opens_again(azurite: Azurite) -> None:
    store = _store(azurite)
    store.create()
    store.create()
    row = store.clients.table_service().get_table_client(store.table_name("meta")).get_entity(
        PARTITION, ROW)
    assert (row["version"], SCHEMA_VERSION) == (2, 2)
    store.drop()


def test_a_store_of_another_layout_is_refused(azurite: Azurite) -> None:
    store = _store(azurite)
    store.create()
    meta = store.clients.table_service().get_table_client(store.table_name("meta"))
    meta.upsert_entity({"PartitionKey": PARTITION, "RowKey": ROW, "version": 3})
    with pytest.raises(ConfigError, match="written by storage layout 3; this acr-scan reads "
                                          "layout 2 and does not convert it"):
        store.create()
    store.drop()


def test_image_rows_without_a_layout_row_are_layout_1(azurite: Azurite) -> None:
    store = _store(azurite)
    store.create()
    store.clients.table_service().get_table_client(store.table_name("meta")).delete_entity(
        PARTITION, ROW)
    store.images.table.create_entity({"PartitionKey": "r|0", "RowKey": "sha256:0",
                                      "registry": "r", "digest": "sha256:0"})
    with pytest.raises(ConfigError, match="written by storage layout 1"):
        store.create()
    store.drop()


def test_the_dashboard_secret_is_made_once_and_shared(azurite: Azurite) -> None:
    store = _store(azurite)
    store.create()
    first = store.dashboard_secret()
    other = Store.from_connection_string(azurite.connection_string, prefix=store.prefix)
    assert (len(first), int(first, 16) >= 0, other.dashboard_secret(),
            store.dashboard_secret()) == (64, True, first, first)
    store.drop()


def test_an_emptied_dashboard_secret_is_an_error_not_an_empty_key(azurite: Azurite) -> None:
    store = _store(azurite)
    store.create()
    meta = store.clients.table_service().get_table_client(store.table_name("meta"))
    meta.upsert_entity({"PartitionKey": SECRET_PARTITION, "RowKey": DASHBOARD_SECRET_ROW,
                        "value": ""})
    with pytest.raises(ConfigError, match="the stored secret 'dashboard' in the meta table is "
                                          "missing or empty"):
        store.dashboard_secret()
    store.drop()
