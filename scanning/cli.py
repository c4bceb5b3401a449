"""``python -m scanning …``: one parser; each command lives in its own module.

Every command module exposes ``register(subparsers)``, which adds its sub-command with
``set_defaults(handler=fn)``; ``fn(args) -> int`` is the exit code. The list is explicit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from scanning.commands import db, sbom, scan
from scanning.errors import ScanError
from scanning.local import cli as local_cli

COMMAND_MODULES = (sbom, scan, db, local_cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scanning", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except ScanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
