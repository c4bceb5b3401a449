"""The local stack: Azurite, the registry and the functions host, up and down together.

``up`` runs in the foreground: it starts Azurite and the registry as child process groups, runs
the functions host in-process, writes pid files and ``stack.json`` under ``.local/`` and waits.
Ctrl-C or SIGTERM (what ``down`` sends) stops everything it started. ``down`` also kills the
recorded server process groups itself, in case ``up`` died without cleaning up.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanning.errors import ConfigError
from scanning.local.host import APP_HOST_JSON, FunctionHost, PullHandler, route_prefix_of
from scanning.local.services import (
    LOOPBACK,
    PROJECT_ROOT,
    AzuritePorts,
    azurite_connection_string,
    port_open,
    start_azurite,
    start_registry,
)

DEFAULT_DATA_DIR = PROJECT_ROOT / ".local"
LOCAL_SETTINGS = PROJECT_ROOT / "local.settings.json"
KEY_SETTING = "LOCAL_FUNCTION_KEY"
STORAGE_SETTING = "AzureWebJobsStorage"
STATE_FILE = "stack.json"
# pid file name → a word its command line must contain (guards against recycled pids).
PID_FILES = {"up": "scanning", "azurite": "azurite", "registry": "registry"}


@dataclass(frozen=True, slots=True, kw_only=True)
class StackConfig:
    host_port: int = 7071
    registry_port: int = 5000
    azurite: AzuritePorts = field(default_factory=AzuritePorts)
    data_dir: Path = DEFAULT_DATA_DIR
    settings_file: Path = LOCAL_SETTINGS
    app: str = "function_app:app"  # module:attribute of the FunctionApp


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a Core Tools style ``local.settings.json``; {} when absent."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from error
    values = document.get("Values", {}) if isinstance(document, dict) else {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: Values must be an object")
    return {str(key): str(value) for key, value in values.items()}


def apply_local_settings(values: dict[str, str]) -> None:
    """Settings from the file fill in what the environment does not already set."""
    for key, value in values.items():
        os.environ.setdefault(key, value)


def function_key(values: dict[str, str]) -> tuple[str, bool]:
    """The function key from the environment or the settings file, else a new one (True)."""
    key = os.environ.get(KEY_SETTING) or values.get(KEY_SETTING, "")
    if key:
        return key, False
    return secrets.token_urlsafe(24), True


def load_app(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute or "app")
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot load the function app {spec!r}: {error}") from error


# --- pid files ------------------------------------------------------------------------------
def _pid_path(data_dir: Path, name: str) -> Path:
    return data_dir / "pids" / f"{name}.pid"


def process_alive(pid: int, marker: str = "") -> bool:
    """True when ``pid`` runs (not a zombie) and its command line contains ``marker``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def read_pids(data_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for name in PID_FILES:
        path = _pid_path(data_dir, name)
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int(path.read_text().strip())
    return pids


def running_pids(data_dir: Path) -> dict[str, int]:
    return {name: pid for name, pid in read_pids(data_dir).items()
            if process_alive(pid, PID_FILES[name])}


def _write_pid(data_dir: Path, name: str, pid: int) -> None:
    path = _pid_path(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def _clear_state(data_dir: Path) -> None:
    for name in PID_FILES:
        _pid_path(data_dir, name).unlink(missing_ok=True)
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def _write_state(data_dir: Path, state: dict[str, Any]) -> None:
    """``stack.json``: endpoints and the key, readable by the owner only (it holds the key)."""
    path = data_dir / STATE_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state, file, indent=2)


def read_state(data_dir: Path) -> dict[str, Any]:
    path = data_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


# --- up -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class RunningStack:
    """What ``up`` started, handed to the ``on_ready`` callback (the demo uses it)."""

    host: FunctionHost
    registry_host: str
    storage_connection_string: str
    function_key: str
    key_generated: bool
    config: StackConfig
    stop: threading.Event

    def summary(self) -> str:
        base = self.host.base_url
        key_note = " (generated for this run)" if self.key_generated else ""
        ports = self.config.azurite
        lines = [
            "acr-scan local stack is up",
            f"  functions host  {base}/api/  (status {base}/admin/host/status)",
            f"  function key    {self.function_key}{key_note}",
            f"  registry        {self.registry_host}  (notifications -> "
            f"{self.host.registry_events_url})",
            f"  azurite         blob {LOOPBACK}:{ports.blob}  queue {LOOPBACK}:{ports.queue}  "
            f"table {LOOPBACK}:{ports.table}",
            f"  data            {self.config.data_dir}",
            "  functions:",
        ]
        for entry in self.host.describe()["functions"]:
            where = entry.get("url") or entry.get("schedule") or ""
            lines.append(f"    {entry['name']:<22} {entry['trigger']:<22} {where}")
        lines.append(f"  try: curl -H 'x-functions-key: {self.function_key}' {base}/api/images")
        return "\n".join(lines)


def _check_ports_free(config: StackConfig) -> None:
    wanted = {"functions host": config.host_port, "registry": config.registry_port,
              "azurite blob": config.azurite.blob, "azurite queue": config.azurite.queue,
              "azurite table": config.azurite.table}
    busy = [f"{name} port {port}" for name, port in wanted.items() if port_open(port)]
    if busy:
        raise ConfigError(f"in use: {', '.join(busy)}; run `python -m scanning local down` or "
                          "choose other ports")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM from `down` stops `up` like Ctrl-C does


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Ctrl-C must stop the stack even when started with SIGINT ignored (a background job).
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Cleanup runs to the end even if Ctrl-C is pressed again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def pull_handler_for_host() -> PullHandler:
    """The hook pull notifications go to: ``scanning.functions.pulls.record_pulls``."""
    from scanning.functions.pulls import record_pulls

    return record_pulls


def up(config: StackConfig, *, on_ready: Callable[[RunningStack], None] | None = None,
       out: Callable[[str], None] = print) -> None:
    """Start everything, run until Ctrl-C/SIGTERM/``stop`` is set, then stop everything."""
    already = running_pids(config.data_dir)
    if already:
        raise ConfigError(f"the local stack is already running ({already}); "
                          "run `python -m scanning local down` first")
    _clear_state(config.data_dir)
    _check_ports_free(config)
    values = read_local_settings(config.settings_file)
    apply_local_settings(values)
    key, generated = function_key(values)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    _write_pid(config.data_dir, "up", os.getpid())
    stop = threading.Event()
    azurite = registry = host = None
    try:
        with _stop_on_sigterm():
            azurite = start_azurite(config.data_dir / "azurite", config.azurite)
            _write_pid(config.data_dir, "azurite", azurite.process.pid)
            # The functions read their storage from this setting, as in Azure.
            os.environ[STORAGE_SETTING] = azurite.connection_string
            # The web dashboard signs in with the same key (scanning.dashboard.auth).
            os.environ["DASHBOARD_KEY"] = key
            host = FunctionHost(load_app(config.app), function_key=key,
                                registry_token=secrets.token_urlsafe(24),
                                route_prefix=route_prefix_of(APP_HOST_JSON),
                                port=config.host_port, pull_handler=pull_handler_for_host())
            host.start()
            registry = start_registry(config.data_dir / "registry", port=config.registry_port,
                                      notify_url=host.registry_events_url,
                                      notify_token=host.registry_token)
            _write_pid(config.data_dir, "registry", registry.process.pid)
            running = RunningStack(host=host, registry_host=registry.host,
                                   storage_connection_string=azurite.connection_string,
                                   function_key=key, key_generated=generated, config=config,
                                   stop=stop)
            _write_state(config.data_dir, {
                "pid": os.getpid(), "host_url": host.base_url, "registry": registry.host,
                "azurite": {"blob": config.azurite.blob, "queue": config.azurite.queue,
                            "table": config.azurite.table},
                "function_key": key,
            })
            out(running.summary())
            _ensure_advisory_index(azurite.connection_string, out)
            if on_ready is not None:
                on_ready(running)
            out("Press Ctrl-C to stop.")
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        with _uninterrupted():
            out("stopping the local stack…")
            if host is not None:
                host.stop()
            if registry is not None:
                registry.stop()
            if azurite is not None:
                azurite.stop()
            _clear_state(config.data_dir)
            out("stopped")


def _ensure_advisory_index(connection_string: str, out: Callable[[str], None]) -> None:
    """Publish the demo index when Azurite holds none: without one every scan fails."""
    from scanning.local.demo import publish_demo_index
    from scanning.store.advisory_index import index_published
    from scanning.store.clients import StorageClients

    service = StorageClients.from_connection_string(connection_string).blob_service()
    if index_published(service):
        return
    count = publish_demo_index(connection_string)
    out(f"  advisories      none were published: published the demo index ({count} invented "
        "DEMO- records); publish a real one with `acr-scan db publish FILE`")


def storage_connection_string(data_dir: Path) -> str:
    """The running stack's Azurite connection string, or "" when it does not run."""
    state = read_state(data_dir) if running_pids(data_dir) else {}
    ports = state.get("azurite")
    if not isinstance(ports, dict):
        return ""
    return azurite_connection_string(AzuritePorts(blob=int(ports["blob"]),
                                                  queue=int(ports["queue"]),
                                                  table=int(ports["table"])))


# --- down / status --------------------------------------------------------------------------
def down(data_dir: Path, *, timeout: float = 20.0) -> list[str]:
    """Stop a running ``up`` and anything it left; what was stopped, by name."""
    pids = running_pids(data_dir)
    stopped: list[str] = []
    up_pid = pids.get("up")
    if up_pid is not None and up_pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(up_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(up_pid, PID_FILES["up"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(up_pid, PID_FILES["up"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(up_pid, signal.SIGKILL)
        stopped.append("up")
    for name in ("registry", "azurite"):
        pid = pids.get(name)
        if pid is None:
            continue
        if process_alive(pid, PID_FILES[name]):
            # The servers lead their own process groups (services.spawn).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while process_alive(pid, PID_FILES[name]) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        stopped.append(name)
    _clear_state(data_dir)
    return stopped


def status(data_dir: Path) -> dict[str, Any]:
    """What runs: pids per component and the stack's recorded endpoints."""
    pids = running_pids(data_dir)
    state = read_state(data_dir) if pids else {}
    state.pop("function_key", None)
    return {"running": pids, **state}
