"""Blob listings by name against Azurite: the rescan's inventory listing and ``names``."""

from __future__ import annotations

from scanning.store import BlobKind, Store


def test_inventory_names_are_every_inventory_and_nothing_else(store: Store) -> None:
    store.blobs.put_inventory("one.azurecr.io", "sha256:" + "a" * 64, b"{}")
    store.blobs.put_inventory("one.azurecr.io", "sha256:" + "b" * 64, b"{}")
    store.blobs.put_inventory("two.azurecr.io/x", "sha256:" + "a" * 64, {"k": 1})
    store.blobs.put(BlobKind.INDEX_KEYS, "not-an-inventory", b"x")
    assert store.blobs.inventory_names() == frozenset({
        store.blobs.inventory_name("one.azurecr.io", "sha256:" + "a" * 64),
        store.blobs.inventory_name("one.azurecr.io", "sha256:" + "b" * 64),
        store.blobs.inventory_name("two.azurecr.io/x", "sha256:" + "a" * 64)})


def test_inventory_names_of_an_empty_store_are_none(store: Store) -> None:
    assert store.blobs.inventory_names() == frozenset()


def test_names_are_those_under_the_prefix_in_name_order(store: Store) -> None:
    for name in ("b/2", "a/1", "b/1", "ba/3"):
        store.blobs.put(BlobKind.INDEX_KEYS, name, b"x")
    assert store.blobs.names(BlobKind.INDEX_KEYS, "b/") == ["b/1", "b/2"]
