"""What a fresh ``local up`` gives a user: an advisory index to scan with, ``status`` with the
key and URLs, ``db fetch``/``db publish`` that find the stack's storage; and ``local reset``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.advisories.index import load_index
from scanning.cli import main
from scanning.local import stack
from scanning.local.services import PROJECT_ROOT, free_port
from scanning.local.stack import read_state
from tests.local.helpers import FUNCTION_KEY, wait_until


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int]]:
    """A fresh stack: (data dir, its stdout file, host port)."""
    folder = tmp_path_factory.mktemp("stack")
    data_dir, log = folder / "local", folder / "up.out"
    ports = {name: free_port() for name in ("host", "registry", "blob", "queue", "table")}
    with log.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "scanning", "local", "up", "--data-dir", str(data_dir),
             *(arg for name, port in ports.items()
               for arg in (f"--{name}-port", str(port)))],
            cwd=PROJECT_ROOT, env={**os.environ, "LOCAL_FUNCTION_KEY": FUNCTION_KEY},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: read_state(data_dir) and "Press Ctrl-C" in log.read_text(),
                   timeout=90)
        yield data_dir, log, ports["host"]
    finally:
        main(["local", "down", "--data-dir", str(data_dir)])
        up.wait(timeout=30)


pytestmark = pytest.mark.integration


def test_a_fresh_stack_publishes_the_demo_index_and_says_so(
        running: tuple[Path, Path, int]) -> None:
    _, log, _ = running
    assert [line for line in log.read_text().splitlines() if line.startswith("  advisories ")] == [
        "  advisories      none were published: published the demo index (8 invented DEMO- "
        "records); publish a real one with `acr-scan db publish FILE`"]


def test_status_shows_the_api_the_dashboard_and_the_function_key(
        running: tuple[Path, Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _, port = running
    capsys.readouterr()
    assert main(["local", "status", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith(("api ", "key ", "dashboard "))] == [
        f"api        http://127.0.0.1:{port}/api/  (health http://127.0.0.1:{port}/api/health)",
        f"key        {FUNCTION_KEY}  (header x-functions-key, or ?code=)",
        f"dashboard  http://127.0.0.1:{port}/?code={FUNCTION_KEY}"]


def test_db_fetch_finds_the_running_stack_s_storage(
        running: tuple[Path, Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, _, _ = running
    for name in ("AzureWebJobsStorage", "AzureWebJobsStorage__blobServiceUri"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(stack, "DEFAULT_DATA_DIR", data_dir)
    assert main(["db", "fetch", "--out", str(tmp_path / "fetched.idx")]) == 0
    assert len(load_index(tmp_path / "fetched.idx").advisories) == 8


def test_reset_with_yes_deletes_the_data_dir(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "local" / "azurite").mkdir(parents=True)
    assert main(["local", "reset", "--yes", "--data-dir", str(tmp_path / "local")]) == 0
    assert (capsys.readouterr().out, (tmp_path / "local").exists()) == (
        f"deleted {tmp_path / 'local'}\n", False)


def test_reset_without_yes_keeps_the_data_dir_unless_confirmed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "local").mkdir()
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["local", "reset", "--data-dir", str(tmp_path / "local")]) == 1
    assert (capsys.readouterr().out, (tmp_path / "local").exists()) == (
        "nothing deleted\n", True)
