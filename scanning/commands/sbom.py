"""`python -m scanning sbom`: not built yet."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("sbom", help="(not built yet)")
    parser.set_defaults(handler=lambda args: 2)
