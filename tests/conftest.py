"""Shared fixtures: the shared test data folder, and real Azurite and registry servers.

The servers start on free loopback ports once per session and are torn down at the end.
Tests that need registry notifications start their own registry with ``start_registry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.local.services import (
    Azurite,
    AzuritePorts,
    Registry,
    free_port,
    start_azurite,
    start_registry,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = PROJECT_ROOT.parent / "shared" / "testdata"
SHARED_SAMPLES = PROJECT_ROOT.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """``../shared/testdata`` read in place; tests skip when a clone has no shared folder."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    # In memory: tests need no data after the session (the local stack keeps it on disk).
    server = start_azurite(tmp_path_factory.mktemp("azurite"), AzuritePorts.free(),
                           in_memory=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = start_registry(tmp_path_factory.mktemp("registry"), port=free_port())
    yield server
    server.stop()
