"""The product end to end: the real ``function_app.app`` in the local functions host, a real
Distribution registry whose notifications go to that host, Azurite, and an advisory index
published to Blob Storage the way the daily refresh publishes it.

The servers start once per session. Every test gets its own storage namespace
(``STORE_PREFIX``, advisory container and notification queue), so layer caches, billing and
images never leak from one test into another; each test also pushes to its own repository.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

import function_app
from scanning.local.host import APP_HOST_JSON, FunctionHost, route_prefix_of
from scanning.local.services import Azurite, free_port, start_registry
from scanning.store import Store
from scanning.store.advisory_index import publish_index
from tests.integration.helpers import (
    ADVISORIES,
    BARRIER_REPOSITORY,
    FUNCTION_KEY,
    REGISTRY_TOKEN,
    App,
    IndexFiles,
    PullRecorder,
    Stack,
    compile_folders,
    push_blob,
    reset_singletons,
)


@pytest.fixture(scope="session")
def index_files(tmp_path_factory: pytest.TempPathFactory) -> IndexFiles:
    directory = tmp_path_factory.mktemp("advisory-index")
    return IndexFiles(
        base=compile_folders([ADVISORIES / "base"], directory / "base.idx"),
        updated=compile_folders([ADVISORIES / "base", ADVISORIES / "update"],
                                directory / "updated.idx"),
    )


@pytest.fixture(scope="session")
def stack(azurite: Azurite, index_files: IndexFiles,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as running:
        # What `local up` sets: the functions read their storage from this setting.
        patch.setenv("AzureWebJobsStorage", azurite.connection_string)
        # Untagged manifest pushes wait this long for an index that lists them.
        patch.setenv("INDEX_CHILD_GRACE_SECONDS", "1")
        pulls = PullRecorder()
        host = FunctionHost(function_app.app, function_key=FUNCTION_KEY,
                            registry_token=REGISTRY_TOKEN, port=0, pull_handler=pulls,
                            route_prefix=route_prefix_of(APP_HOST_JSON),
                            run_timers=False)
        host.start()
        running.callback(host.stop)
        registry = start_registry(tmp_path_factory.mktemp("registry"), port=free_port(),
                                  notify_url=host.registry_events_url,
                                  notify_token=host.registry_token)
        running.callback(registry.stop)
        quiet = start_registry(tmp_path_factory.mktemp("quiet-registry"), port=free_port())
        running.callback(quiet.stop)
        # Pushing a blob notifies the host of nothing it acts on (ACR sends no event for it).
        barrier = push_blob(registry.host, BARRIER_REPOSITORY, b"acr-scan test barrier\n")
        yield Stack(host=host, registry=registry, quiet_registry=quiet,
                    connection_string=azurite.connection_string, pulls=pulls,
                    index_files=index_files, barrier_blob=barrier["digest"])


@pytest.fixture
def app(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """A fresh storage namespace with the base advisory index published."""
    prefix = f"it{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("STORE_PREFIX", prefix)
    monkeypatch.setenv("ADVISORY_CONTAINER", f"{prefix}-advisories")
    monkeypatch.setenv("NOTIFY_QUEUE_NAME", f"{prefix}-notifications")
    reset_singletons()
    store = Store.from_connection_string(stack.connection_string, prefix)
    store.create()
    publish_index(store.clients.blob_service(), stack.index_files.base)
    running = App(stack=stack, store=store, prefix=prefix)
    try:
        yield running
    finally:
        # A notification not yet delivered, or a scan still running, would write into the
        # next test's namespace.
        running.settle()
        reset_singletons()
