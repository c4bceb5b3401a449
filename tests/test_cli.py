"""The command itself: its name, version, help and the one-line error contract."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from scanning import __version__
from scanning.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_command_is_acr_scan_running_main() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert (project["scripts"], project["version"]) == (
        {"acr-scan": "scanning.cli:main"}, __version__)


def test_version_prints_name_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert (exited.value.code, capsys.readouterr().out) == (0, f"acr-scan {__version__}\n")


def test_top_level_help_is_written_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert (out.splitlines()[0], "register(" in out, "acr-scan scan IMAGE --db" in out) == (
        "usage: acr-scan [-h] [--version] [-v] COMMAND ...", False, True)


def test_an_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scna"])
    err = capsys.readouterr().err
    assert (exited.value.code, err.count("\n"), err.startswith("error: argument COMMAND: "
                                                                "invalid choice: 'scna'")) == (
        2, 1, True)
