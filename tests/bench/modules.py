"""The bench scripts (``bench/``, not a package) loaded as modules for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from scanning.local.services import Azurite, AzuritePorts, start_azurite

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as module ``name`` (once per process: a second load returns the
    module the first registered, so the tests and the scripts share its state)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def preloaded_azurite(folder: Path, **preloads: Any) -> Azurite:
    """Azurite in memory on free ports, started as the bench starts it with ``preloads``
    (``bench_storage.node_environment``'s options, e.g. ``table_index=True``)."""
    environment = load_bench("bench_storage").node_environment(**preloads)
    return start_azurite(folder, AzuritePorts.free(), in_memory=True, env=environment)
