"""acr-scan: find known vulnerabilities in container images, build the advisory index, and run
the function app locally.

  acr-scan scan IMAGE --db advisories.idx     vulnerabilities of an image (or an SBOM)
  acr-scan sbom IMAGE                         the packages in an image
  acr-scan db update --out advisories.idx     download and compile the advisory index
  acr-scan local up                           the function app on this machine

IMAGE is REGISTRY/REPO[:TAG][@DIGEST], docker-archive:FILE[:TAG|@N], oci:DIR[:REF],
dir:PATH (an unpacked root filesystem) or, for scan, sbom:FILE. Errors are one line on stderr
with exit status 2. `acr-scan COMMAND --help` for each command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from scanning import __version__
from scanning.commands import db, sbom, scan
from scanning.errors import ScanError
from scanning.local import cli as local_cli

# Each module adds its sub-command with ``register(subparsers)`` and
# ``set_defaults(handler=fn)``, ``fn(args) -> int`` being the exit status.
COMMAND_MODULES = (sbom, scan, db, local_cli)
USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as every other error is."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="acr-scan", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"acr-scan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


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
        print(f"error: {one_line(str(error))}", file=sys.stderr)
    except OSError as error:  # a file to read or write: --db, --output, --vex, …
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or one_line(str(error))}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return USAGE_ERROR
