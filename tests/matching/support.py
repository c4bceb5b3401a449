"""Helpers for the matching tests: the project's fixture package sets (fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scanning.model import OSInfo, Package, PackageType

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"


def load_set(name: str) -> tuple[OSInfo | None, tuple[Package, ...]]:
    """One package set of ``fixtures/packages.json``: the OS and its packages."""
    data: dict[str, Any] = json.loads((FIXTURES / "packages.json").read_text())[name]
    os_info = OSInfo(**data["os"]) if data["os"] else None
    packages = tuple(
        Package(**{**item, "type": PackageType(item["type"])}) for item in data["packages"]
    )
    return os_info, packages
