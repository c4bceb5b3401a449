"""``local up`` starts Azurite, the registry and the host; ``local down`` leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanning.cli import main
from scanning.local.services import PROJECT_ROOT, free_port, port_open
from scanning.local.stack import process_alive, read_state, running_pids
from tests.local.helpers import FUNCTION_KEY, request, wait_until

pytestmark = pytest.mark.integration


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return any(process_alive(int(entry.name)) for entry in Path("/proc").iterdir()
               if entry.name.isdigit() and _pgid(int(entry.name)) == pid)


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def test_down_stops_every_process_and_frees_every_port(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports = {name: free_port() for name in ("host", "registry", "blob", "queue", "table")}
    data_dir = tmp_path / "local"
    # Its own session: no signal meant for the test's process group reaches it. Its stderr is
    # kept, so a failure shows what `up` said (a traceback, a warning).
    stderr = (tmp_path / "up.stderr").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "scanning", "local", "up", "--data-dir", str(data_dir),
         "--host-port", str(ports["host"]), "--registry-port", str(ports["registry"]),
         "--blob-port", str(ports["blob"]), "--queue-port", str(ports["queue"]),
         "--table-port", str(ports["table"])],
        cwd=PROJECT_ROOT, env={**os.environ, "LOCAL_FUNCTION_KEY": FUNCTION_KEY},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        start_new_session=True)
    try:
        wait_until(lambda: read_state(data_dir), timeout=60)
        pids = running_pids(data_dir)
        health = request(f"http://127.0.0.1:{ports['host']}/api/health")
        assert (sorted(pids), pids["up"], health) == (
            ["azurite", "registry", "up"], up.pid, (200, b'{"status": "ok"}'))
        assert main(["local", "down", "--data-dir", str(data_dir)]) == 0
        exit_code = up.wait(timeout=30)
        assert exit_code == 0, (tmp_path / "up.stderr").read_text(errors="replace")
        assert (
            [name for name, pid in pids.items() if _group_alive(pid) or process_alive(pid)],
            [name for name, port in ports.items() if port_open(port)],
            running_pids(data_dir),
            capsys.readouterr().out,
        ) == ([], [], {}, "stopped: up, registry, azurite\n")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
            main(["local", "down", "--data-dir", str(data_dir)])
        stderr.close()


def test_status_says_nothing_runs_when_nothing_was_started(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = main(["local", "status", "--data-dir", str(tmp_path)])
    assert (exit_code, capsys.readouterr().out) == (3, "the local stack is not running\n")
