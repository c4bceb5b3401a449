"""``acr-scan local up|down|status|reset|run-timer NAME|demo``: the local stack."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from scanning.errors import ConfigError
from scanning.local import stack
from scanning.local.services import AzuritePorts


def _add_stack_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host-port", type=int, default=7071,
                        help="functions host port (default 7071)")
    parser.add_argument("--registry-port", type=int, default=5000,
                        help="registry port (default 5000)")
    parser.add_argument("--blob-port", type=int, default=10000, help="Azurite blob port")
    parser.add_argument("--queue-port", type=int, default=10001, help="Azurite queue port")
    parser.add_argument("--table-port", type=int, default=10002, help="Azurite table port")
    parser.add_argument("--app", default="function_app:app",
                        help="the function app as module:attribute (default function_app:app)")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=stack.DEFAULT_DATA_DIR,
                        help="state, pid files and server data (default .local/)")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "local", help="run the function app locally with Azurite and a registry",
        description="Run the function app on 127.0.0.1 with Azurite and a registry.")
    commands = parser.add_subparsers(dest="local_command", required=True)

    up_parser = commands.add_parser("up", help="start Azurite, the registry and the host")
    _add_stack_flags(up_parser)
    _add_data_dir(up_parser)
    up_parser.set_defaults(handler=_up)

    demo_parser = commands.add_parser(
        "demo", help="up, push the demo image, show what the functions received")
    _add_stack_flags(demo_parser)
    _add_data_dir(demo_parser)
    demo_parser.set_defaults(handler=_demo)

    down_parser = commands.add_parser("down", help="stop everything `up` started")
    _add_data_dir(down_parser)
    down_parser.set_defaults(handler=_down)

    status_parser = commands.add_parser("status", help="say what is running")
    _add_data_dir(status_parser)
    status_parser.set_defaults(handler=_status)

    reset_parser = commands.add_parser(
        "reset", help="delete the data dir (Azurite tables and blobs, registry images, logs)")
    _add_data_dir(reset_parser)
    reset_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset_parser.set_defaults(handler=_reset)

    timer_parser = commands.add_parser("run-timer", help="run a timer function now")
    timer_parser.add_argument("name", help="the timer function's name")
    timer_parser.add_argument("--url", default="",
                              help="host URL (default: the running stack's)")
    _add_data_dir(timer_parser)
    timer_parser.set_defaults(handler=_run_timer)


def _config(args: argparse.Namespace) -> stack.StackConfig:
    return stack.StackConfig(
        host_port=args.host_port, registry_port=args.registry_port,
        azurite=AzuritePorts(blob=args.blob_port, queue=args.queue_port, table=args.table_port),
        data_dir=args.data_dir.resolve(), app=args.app)


def _up(args: argparse.Namespace) -> int:
    stack.up(_config(args))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from scanning.local.demo import run_demo

    stack.up(_config(args), on_ready=run_demo)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = stack.down(args.data_dir.resolve())
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _host_request(url: str, key: str, *, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                     headers={"x-functions-key": key})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except OSError as error:
        raise ConfigError(f"cannot reach the functions host at {url}: {error}") from error


def _key_and_url(args: argparse.Namespace) -> tuple[str, str]:
    state = stack.read_state(args.data_dir.resolve())
    url = getattr(args, "url", "") or str(state.get("host_url", ""))
    key = (os.environ.get(stack.KEY_SETTING) or str(state.get("function_key", ""))
           or stack.read_local_settings(stack.LOCAL_SETTINGS).get(stack.KEY_SETTING, ""))
    if not url:
        raise ConfigError("the local stack is not running (start it with `local up`)")
    if not key:
        raise ConfigError(f"no function key: set {stack.KEY_SETTING}")
    return url.rstrip("/"), key


def _status(args: argparse.Namespace) -> int:
    report = stack.status(args.data_dir.resolve())
    if not report["running"]:
        print("the local stack is not running")
        return 3
    for name, pid in sorted(report["running"].items()):
        print(f"{name:<10} running, pid {pid}")
    if report.get("host_url"):
        url, key = _key_and_url(args)
        print(f"api        {url}/api/  (health {url}/api/health)")
        print(f"key        {key}  (header x-functions-key, or ?code=)")
        print(f"dashboard  {url}/?code={key}")
        code, body = _host_request(f"{url}/admin/host/status", key)
        if code == 200:
            host = json.loads(body)
            print(f"host       {host['url']}  {json.dumps(host['counters'])}")
            print(f"registry   {report.get('registry', '')}")
            print(f"orchestrations {json.dumps(host['orchestrations'])}")
        else:
            print(f"host       not answering ({code})")
    return 0


def _reset(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    if stack.running_pids(data_dir):
        raise ConfigError("the local stack is running: stop it first with `acr-scan local down`")
    if not data_dir.exists():
        print(f"nothing to reset: {data_dir} does not exist")
        return 0
    if not args.yes:
        answer = input(f"delete {data_dir} (stored results, registry images, logs)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    shutil.rmtree(data_dir)
    print(f"deleted {data_dir}")
    return 0


def _run_timer(args: argparse.Namespace) -> int:
    url, key = _key_and_url(args)
    code, body = _host_request(f"{url}/admin/functions/{args.name}", key, method="POST")
    if code == 202:
        print(f"timer {args.name} ran")
        return 0
    print(f"timer {args.name} failed ({code}): {_error_message(body)}")
    return 1


def _error_message(body: bytes) -> str:
    """The message of the host's JSON error body, or the body as text."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, TypeError, KeyError):
        return body.decode(errors="replace")
