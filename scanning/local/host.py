"""The local functions host: runs the app's own function objects without Azure.

Everything comes from ``app.get_functions()``: the trigger of each function says how it runs.
- HTTP triggers are served at ``/<routePrefix>/<route>`` with route templates, methods and
  the key check of FUNCTION/ADMIN routes (``x-functions-key`` header or ``code`` query
  parameter), as the Functions host does. The app's host.json sets an empty prefix: its API
  routes are ``api/...`` and the web dashboard's catch-all route takes the rest.
- Registry notifications POSTed to ``/registry-events`` (bearer token checked) become the
  Event Grid events ACR would send (``scanning.events.to_event_grid``) and invoke every Event
  Grid trigger; pull notifications go to the pull handler given to the host.
- Timer triggers fire on their schedule and on ``POST /admin/functions/<name>``.
- Orchestrator, activity and durable-client bindings run in-process (``durable.py``); the
  status endpoint is ``/runtime/webhooks/durabletask/instances/<id>``.
Bindings the host does not know (queue, blob, table…) stop indexing with a clear error, rather
than running a function without them.
"""

from __future__ import annotations

import datetime
import hmac
import inspect
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import azure.durable_functions as df
import azure.functions as func
from azure.functions.timer import TimerRequest

from scanning.errors import BadRequest, ConfigError, NotFound, ScanError
from scanning.events import RegistryEvent, normalise, to_event_grid
from scanning.functions.events import SCAN_ORCHESTRATOR
from scanning.httpjson import error_body, parse_json_body
from scanning.local.durable import (
    Activity,
    DurableRuntime,
    Instance,
    LocalDurableClient,
    Orchestrator,
    call_user_function,
    status_http_code,
)
from scanning.local.routes import RouteTemplate, parse_template
from scanning.local.services import LOOPBACK
from scanning.local.timers import Schedule, TimerScheduler, resolve_schedule

log = logging.getLogger(__name__)

REGISTRY_EVENTS_PATH = "/registry-events"
STATUS_PATH = "/runtime/webhooks/durabletask/instances/"
ADMIN_FUNCTIONS_PATH = "/admin/functions/"
ADMIN_STATUS_PATH = "/admin/host/status"
# The host's own endpoints, never a function's route.
HOST_PATHS = ("/runtime/", "/admin/")
# The topic of the Event Grid events the host makes; shaped like an ACR resource id.
LOCAL_TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
               "/providers/Microsoft.ContainerRegistry/registries/local")
# The Functions host rejects request bodies over 100 MB; locally a smaller cap is plenty.
MAX_BODY_BYTES = 16 * 1024 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
# Durable event names: what an instance id may hold (no / \ # ? or control characters).
_EVENT_NAME = re.compile(r"[^/\\#?\x00-\x1f\x7f]{1,256}")
_NO_KEY = "a function key is required (x-functions-key header or code parameter)"

HTTP_TRIGGER = "httpTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
DURABLE_CLIENT = "durableClient"
HTTP_OUTPUT = "http"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, EVENT_GRID_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER,
                      ACTIVITY_TRIGGER)

PullHandler = Callable[[Sequence[RegistryEvent]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexedFunction:
    """One function of the app, as the host runs it."""

    name: str
    trigger_type: str
    trigger_name: str  # the parameter the trigger value is passed as
    function: Any  # azure.functions' Function object (decorators.function_app.Function)
    client_name: str = ""  # durable client parameter, if any
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None  # None: every method
    auth_level: str = ""
    schedule: Schedule | None = None
    run_on_startup: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppIndex:
    functions: tuple[IndexedFunction, ...]

    def by_trigger(self, trigger_type: str) -> tuple[IndexedFunction, ...]:
        return tuple(item for item in self.functions if item.trigger_type == trigger_type)

    def get(self, name: str) -> IndexedFunction | None:
        return next((item for item in self.functions if item.name.lower() == name.lower()),
                    None)


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _get_functions(app: Any) -> list[Any]:
    """``app.get_functions()``, leaving the app as it was.

    get_functions records each function name on the app for its duplicate-name check, so a
    second call (the Azure worker's, a test's, another host's) would fail: start from an empty
    record (an earlier caller may have left one) and restore whatever was there.
    """
    recorded = getattr(app, "functions_bindings", None)
    try:
        app.functions_bindings = {}
        return list(app.get_functions())
    finally:
        app.functions_bindings = recorded


def index_app(app: Any) -> AppIndex:
    """Read every function of a FunctionApp/DFApp; refuse bindings the host cannot run."""
    indexed: list[IndexedFunction] = []
    for function in _get_functions(app):
        name = function.get_function_name()
        trigger = function.get_trigger()
        if trigger is None:
            raise ConfigError(f"function {name} has no trigger")
        trigger_type = _enum_value(trigger.type)
        if trigger_type not in SUPPORTED_TRIGGERS:
            raise ConfigError(f"function {name}: the local host cannot run {trigger_type}")
        client_name = ""
        for binding in function.get_bindings():
            binding_type = _enum_value(binding.type)
            if binding is trigger:
                continue
            if binding_type == DURABLE_CLIENT:
                client_name = binding.name
            elif binding_type == HTTP_OUTPUT and binding.name == "$return":
                continue
            else:
                raise ConfigError(
                    f"function {name}: binding {binding_type} ({binding.name}) is not supported "
                    "by the local host")
        details: dict[str, Any] = {}
        if trigger_type == HTTP_TRIGGER:
            methods = getattr(trigger, "methods", None)
            details["route"] = parse_template(getattr(trigger, "route", None) or name)
            details["methods"] = (frozenset(_enum_value(method).upper() for method in methods)
                                  if methods else None)
            details["auth_level"] = _enum_value(getattr(trigger, "auth_level", None)
                                                or app.auth_level).lower()
        elif trigger_type == TIMER_TRIGGER:
            details["schedule"] = resolve_schedule(trigger.schedule)
            details["run_on_startup"] = bool(getattr(trigger, "run_on_startup", False))
        indexed.append(IndexedFunction(
            name=name, trigger_type=trigger_type, trigger_name=trigger.name,
            function=function, client_name=client_name, **details))
    return AppIndex(functions=tuple(indexed))


def user_callable(item: IndexedFunction) -> Callable[..., Any]:
    """The code to call: decorators of azure-functions-durable wrap the user's function.

    ``orchestration_trigger`` replaces it with a handle whose ``orchestrator_function`` is the
    generator function; ``durable_client_input`` wraps it in middleware that builds a client
    from the runtime's JSON and keeps the original as ``client_function``.
    """
    user_function = item.function.get_user_function()
    if item.trigger_type == ORCHESTRATION_TRIGGER:
        return getattr(user_function, "orchestrator_function", user_function)
    if item.client_name:
        original = getattr(user_function, "client_function", None)
        if original is None:
            raise ConfigError(f"function {item.name}: cannot find the durable client function")
        return original
    return user_function


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalContext:
    """What ``func.Context`` offers, for functions that take a ``context`` parameter."""

    invocation_id: str
    function_name: str
    function_directory: str = ""
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def _json_response(status: int, value: Any) -> Response:
    return Response(status=status, headers=(("Content-Type", "application/json"),),
                    body=json.dumps(value, indent=2, default=str).encode())


def scan_line(instance: Instance) -> str | None:
    """What the host prints when a scan orchestration ends: image, status, counts, seconds;
    None for other orchestrations."""
    if instance.name != SCAN_ORCHESTRATOR:
        return None
    request = instance.input if isinstance(instance.input, dict) else {}
    image = (f"{request.get('registry', '')}/{request.get('repository', '')}"
             f"@{request.get('digest', '')}")
    output = instance.output if isinstance(instance.output, dict) else {}
    completed = instance.status is df.OrchestrationRuntimeStatus.Completed
    status = str(output.get("status", "")) if completed else instance.status.value.lower()
    seconds = (instance.updated - instance.created).total_seconds()
    return (f"scan {image} {status}: {int(output.get('findings', 0))} findings, "
            f"{int(output.get('disabled', 0))} disabled, {seconds:.1f} s")


def print_scan_line(instance: Instance) -> None:
    """One line per scan on stdout, so ``acr-scan local up`` shows what each push did."""
    line = scan_line(instance)
    if line is not None:
        print(line, flush=True)


def _error_response(status: HTTPStatus, message: str,
                    headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Every answer the host itself gives to a bad request: JSON, as the app's own."""
    body = json.dumps(error_body(status.phrase.replace(" ", ""), message)).encode()
    return Response(status=status, headers=(("Content-Type", "application/json"), *headers),
                    body=body)


def _parse_event_time(value: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def event_grid_event(event: Mapping[str, Any]) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=str(event["id"]), data=dict(event["data"]), topic=str(event["topic"]),
        subject=str(event["subject"]), event_type=str(event["eventType"]),
        event_time=_parse_event_time(str(event.get("eventTime", ""))),
        data_version=str(event.get("dataVersion", "")))


@dataclass(slots=True, kw_only=True)
class HostCounters:
    """What the host did, for ``local status`` and tests."""

    http_requests: int = 0
    registry_notifications: int = 0
    event_grid_events: int = 0
    pull_events: int = 0
    timer_runs: dict[str, int] = field(default_factory=dict)


def route_prefix_of(host_json: Path) -> str:
    """``extensions.http.routePrefix`` of a host.json; ``api`` when it does not say."""
    try:
        document = json.loads(host_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {host_json}: {error}") from error
    prefix = document.get("extensions", {}).get("http", {}).get("routePrefix", "api") \
        if isinstance(document, dict) else "api"
    if not isinstance(prefix, str):
        raise ConfigError(f"{host_json}: routePrefix must be a string")
    return prefix


# The app's own host.json, which Azure reads too.
APP_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"


class FunctionHost:
    def __init__(self, app: Any, *, function_key: str, registry_token: str,
                 host: str = LOOPBACK, port: int = 7071, route_prefix: str = "api",
                 pull_handler: PullHandler | None = None, max_activity_workers: int = 8,
                 run_timers: bool = True) -> None:
        if not function_key:
            raise ConfigError("the local host needs a function key")
        self.index = index_app(app)
        self.function_key = function_key
        self.registry_token = registry_token
        self.host = host
        self.port = port
        self.route_prefix = route_prefix.strip("/")
        self.pull_handler = pull_handler
        self.counters = HostCounters()
        self._counter_lock = threading.Lock()
        self.durable = DurableRuntime(
            orchestrators={item.name: Orchestrator(name=item.name, function=user_callable(item))
                           for item in self.index.by_trigger(ORCHESTRATION_TRIGGER)},
            activities={item.name: Activity(name=item.name, function=user_callable(item),
                                            input_name=item.trigger_name)
                        for item in self.index.by_trigger(ACTIVITY_TRIGGER)},
            max_workers=max_activity_workers,
            status_url=self.status_url,
            on_done=print_scan_line,
        )
        self.client = LocalDurableClient(self.durable)
        self._routes = sorted(self.index.by_trigger(HTTP_TRIGGER),
                              key=lambda item: item.route.precedence if item.route else ())
        self._timers = TimerScheduler(
            {item.name: item.schedule for item in self.index.by_trigger(TIMER_TRIGGER)
             if item.schedule is not None},
            lambda name, when: self.run_timer(name, scheduled=when),
        ) if run_timers else None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def function_url(self, route: str) -> str:
        """Where an HTTP function with this route template is served."""
        return "/".join((self.base_url, *([self.route_prefix] if self.route_prefix else []),
                         route))

    @property
    def registry_events_url(self) -> str:
        return self.base_url + REGISTRY_EVENTS_PATH

    def status_url(self, instance_id: str) -> str:
        return (f"{self.base_url}{STATUS_PATH}{quote(instance_id, safe='')}"
                f"?code={quote(self.function_key, safe='')}")

    def start(self) -> None:
        """Serve on a background thread; ``port=0`` picks a free port."""
        server = _QuietServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True,
                                        name="function-host")
        self._thread.start()
        if self._timers:
            self._timers.start()
            for item in self.index.by_trigger(TIMER_TRIGGER):
                if item.run_on_startup:
                    threading.Thread(target=self.run_timer, args=(item.name,), daemon=True,
                                     name=f"timer-startup-{item.name}").start()
        log.info("function host listening on %s", self.base_url)

    def stop(self) -> None:
        if self._timers:
            self._timers.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.durable.close()

    # --- invoking functions -------------------------------------------------------------
    def invoke(self, item: IndexedFunction, trigger_value: Any) -> Any:
        function = user_callable(item)
        kwargs: dict[str, Any] = {item.trigger_name: trigger_value}
        if item.client_name:
            kwargs[item.client_name] = self.client
        if "context" in inspect.signature(function).parameters and "context" not in kwargs:
            kwargs["context"] = LocalContext(invocation_id=str(uuid.uuid4()),
                                             function_name=item.name)
        log.info("Executing 'Functions.%s'", item.name)
        return call_user_function(function, **kwargs)

    def run_timer(self, name: str, *, scheduled: datetime.datetime | None = None) -> None:
        item = self.index.get(name)
        if item is None or item.trigger_type != TIMER_TRIGGER:
            raise BadRequest(f"no timer function named {name!r}")
        now = datetime.datetime.now(datetime.UTC)
        next_run = item.schedule.next_after(now) if item.schedule else now
        request = TimerRequest(
            past_due=False,
            schedule_status={"Last": (scheduled or now).isoformat(),
                             "Next": next_run.isoformat(), "LastUpdated": now.isoformat()},
            schedule={"AdjustForDST": True})
        self.invoke(item, request)
        with self._counter_lock:
            self.counters.timer_runs[item.name] = self.counters.timer_runs.get(item.name, 0) + 1

    def deliver_registry_events(self, envelope: Any) -> None:
        """Turn a Distribution notification envelope into Event Grid and pull deliveries."""
        if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
            raise BadRequest("a registry notification is {\"events\": [...]}")
        pulls: list[RegistryEvent] = []
        failures: list[str] = []
        for raw in envelope["events"]:
            if not isinstance(raw, dict):
                raise BadRequest("a registry event must be an object")
            if raw.get("action") == "pull":
                pulls.extend(normalise(raw))
                continue
            grid_event = to_event_grid(raw, topic=LOCAL_TOPIC)
            if grid_event is None:
                continue  # blob pushes and mounts: ACR sends nothing for them
            for item in self.index.by_trigger(EVENT_GRID_TRIGGER):
                try:
                    self.invoke(item, event_grid_event(grid_event))
                except Exception as error:
                    log.exception("Event Grid function %s failed on %s", item.name,
                                  grid_event["subject"])
                    failures.append(f"{item.name}: {error}")
            with self._counter_lock:
                self.counters.event_grid_events += 1
        if pulls:
            with self._counter_lock:
                self.counters.pull_events += len(pulls)
            if self.pull_handler is not None:
                self.pull_handler(pulls)
        if failures:
            # A failed delivery is retried by the registry, like Event Grid retries.
            raise ScanError("; ".join(failures), retryable=True)

    # --- HTTP ---------------------------------------------------------------------------
    def _key_ok(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        supplied = headers.get("x-functions-key") or query.get("code") or ""
        return hmac.compare_digest(supplied.encode(), self.function_key.encode())

    def handle(self, method: str, target: str, headers: Mapping[str, str],
               body: bytes) -> Response:
        """One HTTP request; ``headers`` keys are lower case."""
        with self._counter_lock:
            self.counters.http_requests += 1
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        method = method.upper()
        try:
            if path == REGISTRY_EVENTS_PATH:
                return self._registry_notification(method, headers, body)
            if path.startswith(HOST_PATHS):
                # The host's own endpoints come before the functions' routes, as in Azure,
                # where an empty route prefix puts the functions at the root too.
                return self._host_api(method, path, headers, query, body)
            if self._under_prefix(path):
                return self._http_function(method, path, parts.query, query, headers, body)
            return _error_response(HTTPStatus.NOT_FOUND, f"nothing at {path}")
        except BadRequest as error:
            return _error_response(HTTPStatus.BAD_REQUEST, str(error))
        except NotFound as error:
            return _error_response(HTTPStatus.NOT_FOUND, str(error))
        except ScanError as error:
            log.warning("%s %s failed: %s", method, path, error)
            # A retryable failure must stay a 5xx: the registry retries notifications then.
            return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR if error.retryable
                                   else HTTPStatus.BAD_REQUEST, str(error))
        except Exception:
            log.exception("%s %s failed", method, path)
            return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                   "the request failed; see the host's log")

    def _under_prefix(self, path: str) -> bool:
        return (not self.route_prefix or path.startswith(f"/{self.route_prefix}/")
                or path == f"/{self.route_prefix}")

    def _host_api(self, method: str, path: str, headers: Mapping[str, str],
                  query: Mapping[str, str], body: bytes) -> Response:
        if not self._key_ok(headers, query):
            return _error_response(HTTPStatus.UNAUTHORIZED, _NO_KEY)
        if path.startswith(STATUS_PATH):
            return self._durable_api(method, path[len(STATUS_PATH):], body)
        if path.startswith(ADMIN_FUNCTIONS_PATH) and method == "POST":
            name = unquote(path[len(ADMIN_FUNCTIONS_PATH):])
            self.run_timer(name)
            return Response(status=HTTPStatus.ACCEPTED)
        if path == ADMIN_STATUS_PATH and method == "GET":
            return _json_response(200, self.describe())
        return _error_response(HTTPStatus.NOT_FOUND, f"nothing at {path}")

    def _registry_notification(self, method: str, headers: Mapping[str, str],
                               body: bytes) -> Response:
        if method != "POST":
            return _error_response(HTTPStatus.METHOD_NOT_ALLOWED, "registry notifications are "
                                   "POSTed", (("Allow", "POST"),))
        expected = f"Bearer {self.registry_token}".encode()
        if not hmac.compare_digest(headers.get("authorization", "").encode(), expected):
            return _error_response(HTTPStatus.UNAUTHORIZED, "the registry token is missing or "
                                   "wrong")
        with self._counter_lock:
            self.counters.registry_notifications += 1
        self.deliver_registry_events(parse_json_body(body, "a registry notification",
                                                     max_bytes=MAX_BODY_BYTES))
        return Response(status=HTTPStatus.OK)

    def _http_function(self, method: str, path: str, raw_query: str, query: Mapping[str, str],
                       headers: Mapping[str, str], body: bytes) -> Response:
        relative = path[len(self.route_prefix) + 1:] if self.route_prefix else path[1:]
        allowed: set[str] = set()
        for item in self._routes:
            assert item.route is not None
            values = item.route.match(relative)
            if values is None:
                continue
            if item.methods is not None and method not in item.methods:
                allowed |= item.methods
                continue
            if item.auth_level != "anonymous" and not self._key_ok(headers, query):
                return _error_response(HTTPStatus.UNAUTHORIZED, _NO_KEY)
            url = f"{self.base_url}{path}" + (f"?{raw_query}" if raw_query else "")
            request = func.HttpRequest(method=method, url=url, headers=dict(headers),
                                       params=dict(query), route_params=values, body=body)
            return self._to_response(item, self.invoke(item, request))
        if allowed:
            return _error_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                   f"{method} is not allowed on {path}",
                                   (("Allow", ", ".join(sorted(allowed))),))
        return _error_response(HTTPStatus.NOT_FOUND, f"no function at {path}")

    @staticmethod
    def _to_response(item: IndexedFunction, result: Any) -> Response:
        if result is None:
            return Response(status=HTTPStatus.NO_CONTENT)
        if isinstance(result, str | bytes):
            body = result.encode() if isinstance(result, str) else result
            return Response(status=200, headers=(("Content-Type", "text/plain"),), body=body)
        if not isinstance(result, func.HttpResponse):
            raise ScanError(f"function {item.name} returned {type(result).__name__}, "
                            "not an HttpResponse")
        headers = [(key, value) for key, value in result.headers.items()]
        if not any(key.lower() == "content-type" for key, _ in headers) and result.mimetype:
            content_type = result.mimetype + (f"; charset={result.charset}"
                                              if result.mimetype.startswith("text/") else "")
            headers.append(("Content-Type", content_type))
        return Response(status=result.status_code, headers=tuple(headers),
                        body=result.get_body() or b"")

    def _durable_api(self, method: str, rest: str, body: bytes) -> Response:
        """The Durable Functions HTTP API's instance endpoints (status, terminate, events)."""
        instance_id, _, action = rest.partition("/")
        instance_id = unquote(instance_id)
        if method == "GET" and not action:
            instance = self.durable.get(instance_id)
            if instance is None:
                raise NotFound(f"no orchestration instance {instance_id[:256]!r}")
            status = instance.to_status().to_json()
            return _json_response(status_http_code(instance), status)
        if method == "POST" and action == "terminate":
            self.durable.terminate(instance_id, "terminated over HTTP")
            return Response(status=HTTPStatus.ACCEPTED)
        if method == "POST" and action.startswith("raiseEvent/"):
            name = unquote(action[len("raiseEvent/"):])
            if not _EVENT_NAME.fullmatch(name):
                raise BadRequest(f"not an event name: {name[:80]!r}")
            # The Durable HTTP API takes any JSON value as the event's data, or no body.
            data = parse_json_body(body, "the event's data", max_bytes=MAX_BODY_BYTES) \
                if body else None
            self.durable.raise_event(instance_id, name, data)
            return Response(status=HTTPStatus.ACCEPTED)
        return _error_response(HTTPStatus.NOT_FOUND, f"no {method} {action or 'status'} "
                               "endpoint for an instance")

    def describe(self) -> dict[str, Any]:
        """The host's functions and counters (``GET /admin/host/status``)."""
        functions: list[dict[str, Any]] = []
        for item in self.index.functions:
            entry: dict[str, Any] = {"name": item.name, "trigger": item.trigger_type}
            if item.route is not None:
                entry["url"] = self.function_url(item.route.template)
                entry["methods"] = sorted(item.methods) if item.methods else ["*"]
                entry["authLevel"] = item.auth_level
            if item.schedule is not None:
                entry["schedule"] = item.schedule.expression
            functions.append(entry)
        with self._counter_lock:
            counters = {
                "httpRequests": self.counters.http_requests,
                "registryNotifications": self.counters.registry_notifications,
                "eventGridEvents": self.counters.event_grid_events,
                "pullEvents": self.counters.pull_events,
                "timerRuns": dict(self.counters.timer_runs),
            }
        orchestrations: dict[str, int] = {}
        for instance in self.durable.instances():
            orchestrations[instance.status.value] = orchestrations.get(instance.status.value,
                                                                       0) + 1
        return {"state": "Running", "url": self.base_url, "functions": functions,
                "counters": counters, "orchestrations": orchestrations}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (the registry's timeout, curl ^C) are not host errors.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


def _handler_for(host: FunctionHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "acr-scan-local-host"
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length_header = self.headers.get("Content-Length") or "0"
            # int() would take "1_0", " 10" and full-width digits: only ASCII digits count.
            if not _CONTENT_LENGTH.fullmatch(length_header):
                self._send(_error_response(HTTPStatus.BAD_REQUEST,
                                           "Content-Length must be a decimal number"))
                self.close_connection = True
                return
            length = int(length_header)
            if length > MAX_BODY_BYTES:
                self._send(_error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                           f"the body is over {MAX_BODY_BYTES} bytes"))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            self._send(host.handle(self.command, self.path, headers, body))

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            for key, value in response.headers:
                if key.lower() not in ("content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler

