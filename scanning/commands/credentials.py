"""Registry credentials for the commands: ``--username`` with the password from standard input
(``--password-stdin``) or the ``REGISTRY_PASSWORD`` environment variable, never a flag, so it
stays out of shell history and process lists. ACR needs none: it uses ``DefaultAzureCredential``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from scanning.errors import BadRequest
from scanning.registry import BasicCredentials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", default=None,
                        help="registry user for basic or token auth (non-ACR registries)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the registry password from standard input "
                             "(else REGISTRY_PASSWORD)")


def from_args(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> BasicCredentials | None:
    if args.username is None:
        if args.password_stdin:
            raise BadRequest("--password-stdin needs --username")
        return None
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get("REGISTRY_PASSWORD", "")
    if not password:
        raise BadRequest("--username needs a password: --password-stdin or REGISTRY_PASSWORD")
    return BasicCredentials(username=args.username, password=password)
