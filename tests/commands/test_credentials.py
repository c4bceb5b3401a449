from __future__ import annotations

import argparse
import io

import pytest

from scanning.commands import credentials
from scanning.errors import BadRequest
from scanning.registry import BasicCredentials


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    credentials.add_arguments(parser)
    return parser.parse_args(argv)


def test_no_username_means_anonymous_or_managed_identity() -> None:
    assert credentials.from_args(parse()) is None


def test_password_is_read_from_stdin() -> None:
    args = parse("--username", "ci", "--password-stdin")
    assert credentials.from_args(args, io.StringIO("s3cret\n")) == BasicCredentials(
        username="ci", password="s3cret")


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", "from-env")
    assert credentials.from_args(parse("--username", "ci")) == BasicCredentials(
        username="ci", password="from-env")


def test_username_without_password_is_a_bad_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    with pytest.raises(BadRequest) as error:
        credentials.from_args(parse("--username", "ci"))
    assert str(error.value) == (
        "--username needs a password: --password-stdin or REGISTRY_PASSWORD")


def test_password_stdin_without_username_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as error:
        credentials.from_args(parse("--password-stdin"))
    assert str(error.value) == "--password-stdin needs --username"


def test_credentials_never_print_the_password() -> None:
    assert repr(BasicCredentials(username="ci", password="s3cret")) == (
        "BasicCredentials(username='ci')")
