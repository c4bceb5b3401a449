"""Timer functions fire on their NCRONTAB schedule and on demand (``local run-timer``)."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from scanning.cli import main
from scanning.errors import ConfigError
from scanning.local.host import FunctionHost
from scanning.local.timers import resolve_schedule
from tests.local.helpers import FUNCTION_KEY, REGISTRY_TOKEN, wait_until

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
runs: list[tuple[str, bool]] = []
lock = threading.Lock()


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def yearly(timer: func.TimerRequest) -> None:
    with lock:
        runs.append(("yearly", timer.past_due))


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def every_second(timer: func.TimerRequest) -> None:
    with lock:
        runs.append(("every_second", timer.past_due))


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    server = FunctionHost(app, function_key=FUNCTION_KEY, registry_token=REGISTRY_TOKEN, port=0)
    server.start()
    yield server
    server.stop()


def test_run_timer_command_runs_the_timer_now(host: FunctionHost, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCAL_FUNCTION_KEY", FUNCTION_KEY)
    exit_code = main(["local", "run-timer", "yearly", "--url", host.base_url,
                      "--data-dir", str(tmp_path)])
    assert (exit_code, capsys.readouterr().out, runs.count(("yearly", False))) == (
        0, "timer yearly ran\n", 1)


def test_run_timer_of_an_unknown_function_fails(host: FunctionHost, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCAL_FUNCTION_KEY", FUNCTION_KEY)
    exit_code = main(["local", "run-timer", "nope", "--url", host.base_url,
                      "--data-dir", str(tmp_path)])
    assert (exit_code, capsys.readouterr().out) == (
        1, "timer nope failed (400): no timer function named 'nope'\n")


def test_timer_fires_on_its_schedule(host: FunctionHost) -> None:
    wait_until(lambda: runs.count(("every_second", False)) >= 2, timeout=5)


def test_schedule_has_seconds_first() -> None:
    start = datetime.datetime(2024, 1, 1, 0, 0, 0)
    assert resolve_schedule("30 5 * * * *").next_after(start) == datetime.datetime(
        2024, 1, 1, 0, 5, 30)


def test_schedule_from_an_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SCHEDULE", "0 0 3 * * 0")
    assert resolve_schedule("%TEST_SCHEDULE%").expression == "0 0 3 * * 0"


def test_five_field_cron_is_rejected() -> None:
    with pytest.raises(ConfigError, match="not a six-field NCRONTAB expression"):
        resolve_schedule("0 3 * * 0")
