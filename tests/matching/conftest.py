"""Fixtures for the matching tests: the project's fixture index and the shared advisories."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from tests.matching.support import FIXTURES, SHARED_TESTDATA


@pytest.fixture(scope="session")
def fixture_index() -> AdvisoryIndex:
    return compile_index(iter_records(FIXTURES / "osv"))


@pytest.fixture(scope="session")
def shared_advisories() -> Path:
    folder = SHARED_TESTDATA / "advisories"
    if not folder.is_dir():
        pytest.skip(f"shared advisories not found at {folder}")
    return folder
