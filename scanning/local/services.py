"""Start and stop the local servers: Azurite and the Distribution registry, on 127.0.0.1.

Each server runs in its own process group so stopping it leaves no orphans. Used by
``python -m scanning local up``, by the demo and by the integration-test fixtures alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scanning.errors import ConfigError, ServiceError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
REGISTRY_BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_ports(ports: tuple[int, ...], process: subprocess.Popen[bytes], name: str,
                   timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with code {process.returncode} while starting")
        if all(port_open(port) for port in ports):
            return
        time.sleep(0.05)
    stop_process(process)
    raise ServiceError(f"{name} did not open ports {ports} within {timeout:.0f}s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process started by ``spawn`` and every process in its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    # Children that outlived the leader share its group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def spawn(args: list[str], log_path: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in a session of its own, output appended to ``log_path``; ``env``
    replaces the environment when given."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AzuritePorts:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002

    @classmethod
    def free(cls) -> AzuritePorts:
        return cls(blob=free_port(), queue=free_port(), table=free_port())


def azurite_connection_string(ports: AzuritePorts) -> str:
    base = f"http://{LOOPBACK}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={base}:{ports.blob}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint={base}:{ports.queue}/{AZURITE_ACCOUNT};"
        f"TableEndpoint={base}:{ports.table}/{AZURITE_ACCOUNT};"
    )


def azurite_binary() -> Path:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise ConfigError(f"{binary} is missing: run `npm ci` (or `make setup`) first")
    return binary


@dataclass(slots=True, kw_only=True)
class Azurite:
    ports: AzuritePorts
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.ports)

    def stop(self) -> None:
        stop_process(self.process)


def start_azurite(data_dir: Path, ports: AzuritePorts | None = None, *,
                  in_memory: bool = False, env: dict[str, str] | None = None,
                  node_flags: Sequence[str] = ()) -> Azurite:
    """Azurite on loopback, its data under ``data_dir``; with ``in_memory`` nothing is written
    to disk (Azurite otherwise re-serialises its whole table database on every autosave, a
    cost that grows with the data and that Azure Table Storage does not have). ``env``
    replaces its environment when given; ``node_flags`` are passed to ``node`` itself (for the
    V8 options ``NODE_OPTIONS`` refuses)."""
    ports = ports or AzuritePorts()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [str(azurite_binary())]
    if node_flags:
        node = shutil.which("node")
        if node is None:
            raise ConfigError("node is missing: Azurite runs on Node.js (make setup)")
        command = [node, *node_flags, str(azurite_binary().resolve())]
    args = [
        *command,
        "--silent",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        # Azurite refuses a --location with --inMemoryPersistence.
        *(["--inMemoryPersistence"] if in_memory else ["--location", str(data_dir)]),
        "--blobHost", LOOPBACK, "--blobPort", str(ports.blob),
        "--queueHost", LOOPBACK, "--queuePort", str(ports.queue),
        "--tableHost", LOOPBACK, "--tablePort", str(ports.table),
    ]
    process = spawn(args, data_dir / "azurite.log", env=env)
    wait_for_ports((ports.blob, ports.queue, ports.table), process, "Azurite")
    log.info("Azurite up: blob %s queue %s table %s", ports.blob, ports.queue, ports.table)
    return Azurite(ports=ports, data_dir=data_dir, process=process)


def registry_config(*, port: int, storage_dir: Path, notify_url: str | None,
                    notify_token: str | None) -> str:
    """A Distribution 2.x config: filesystem storage, deletes on, notifications to the host."""
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage_dir}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {LOOPBACK}:{port}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if notify_url:
        lines += [
            "notifications:",
            "  events:",
            "    includereferences: true",
            "  endpoints:",
            "    - name: acr-scan",
            f"      url: {notify_url}",
            "      timeout: 5s",
            "      threshold: 10",
            "      backoff: 1s",
        ]
        if notify_token:
            lines += [
                "      headers:",
                "        Authorization:",
                f"          - Bearer {notify_token}",
            ]
    return "\n".join(lines) + "\n"


@dataclass(slots=True, kw_only=True)
class Registry:
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def start_registry(data_dir: Path, *, port: int = 5000, notify_url: str | None = None,
                   notify_token: str | None = None) -> Registry:
    if shutil.which(REGISTRY_BINARY) is None:
        raise ConfigError(
            f"{REGISTRY_BINARY} is not installed: apt-get install docker-registry (make setup)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "config.yml"
    config_path.write_text(
        registry_config(port=port, storage_dir=data_dir / "storage", notify_url=notify_url,
                        notify_token=notify_token)
    )
    process = spawn([REGISTRY_BINARY, "serve", str(config_path)], data_dir / "registry.log")
    wait_for_ports((port,), process, "registry")
    _wait_for_http(f"http://{LOOPBACK}:{port}/v2/", process, "registry")
    log.info("registry up on %s:%s", LOOPBACK, port)
    return Registry(port=port, data_dir=data_dir, process=process)


def _wait_for_http(url: str, process: subprocess.Popen[bytes], name: str,
                   timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except OSError:
            if process.poll() is not None:
                raise ServiceError(f"{name} exited with code {process.returncode}") from None
            time.sleep(0.05)
    raise ServiceError(f"{name} did not answer {url} within {timeout:.0f}s")


def skopeo_copy(source: str, destination: str, *, timeout: float = 120.0) -> None:
    """Copy an image with skopeo, e.g. ``oci:DIR:tag`` → ``docker://127.0.0.1:5000/repo:tag``.

    ``--all`` keeps every platform of an index; TLS is off because the local registry is http.
    """
    if shutil.which("skopeo") is None:
        raise ConfigError("skopeo is not installed: apt-get install skopeo (make setup)")
    args = ["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
            "--src-tls-verify=false", "--preserve-digests", source, destination]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ServiceError(f"skopeo copy {source} {destination} failed: {result.stderr.strip()}")
