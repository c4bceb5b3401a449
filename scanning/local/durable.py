"""Durable Functions, run in-process: orchestrations drive the app's own generator functions.

The Azure runtime replays an orchestrator against its history. Locally there is one process and
no crash to recover from, so the runner drives the generator once, straight through: each
``yield`` waits for the task it was given (activities run on a bounded thread pool, so a
``task_all`` fan-out runs concurrently) and sends the result back, or throws the activity's
exception into the generator, as the real runtime does. Instance state lives in memory in the
host process: a restarted host forgets its orchestrations (the app's own tables do not).

Inputs and outputs go through a JSON round trip, as they would through Azure Storage, so a
value that cannot be serialised fails locally too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from scanning.errors import NotFound, OrchestrationError, ScanError

log = logging.getLogger(__name__)

# The namespace Durable Functions uses for ``new_uuid`` (DurableOrchestrationContext.new_uuid).
_UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")
# Statuses in which starting the same instance id again does nothing.
_KEEP_STATES = (
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Completed,
)


class _Terminated(BaseException):
    """Thrown into an orchestrator generator to stop it; BaseException so user code's
    ``except Exception`` does not swallow it."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def json_round_trip(value: Any) -> Any:
    """What a value looks like after Durable Functions has stored and reloaded it."""
    return None if value is None else json.loads(json.dumps(value))


def call_user_function(function: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call a user function; ``async def`` ones run to completion on a fresh event loop."""
    result = function(**kwargs)
    if inspect.isawaitable(result):
        async def _await() -> Any:
            return await result
        return asyncio.run(_await())
    return result


class LocalTask:
    """A Durable task backed by a future (activity, sub-orchestration, timer, external event)."""

    def __init__(self, future: concurrent.futures.Future[Any]) -> None:
        self._future = future

    @property
    def future(self) -> concurrent.futures.Future[Any]:
        return self._future

    @property
    def is_completed(self) -> bool:
        return self._future.done()

    @property
    def is_faulted(self) -> bool:
        return self._future.done() and self._future.exception() is not None

    @property
    def result(self) -> Any:
        return self._future.result() if self._future.done() else None

    def wait(self) -> Any:
        return self._future.result()


class WhenAllTask(LocalTask):
    """``task_all``: the list of results in order; fails with the first failure in order."""

    def __init__(self, tasks: Sequence[LocalTask]) -> None:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        super().__init__(future)
        self._tasks = tuple(tasks)
        remaining = [len(self._tasks)]
        lock = threading.Lock()

        def _done(_: concurrent.futures.Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            for task in self._tasks:
                error = task.future.exception()
                if error is not None:
                    future.set_exception(error)
                    return
            future.set_result([task.future.result() for task in self._tasks])

        if not self._tasks:
            future.set_result([])
        for task in self._tasks:
            task.future.add_done_callback(_done)


class WhenAnyTask(LocalTask):
    """``task_any``: completes with the first child task that completes (the task itself)."""

    def __init__(self, tasks: Sequence[LocalTask]) -> None:
        if not tasks:
            raise OrchestrationError("task_any needs at least one task")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        super().__init__(future)
        lock = threading.Lock()

        def _done_for(task: LocalTask) -> Callable[[concurrent.futures.Future[Any]], None]:
            def _done(_: concurrent.futures.Future[Any]) -> None:
                with lock:
                    if not future.done():
                        future.set_result(task)
            return _done

        for task in tasks:
            task.future.add_done_callback(_done_for(task))


def _completed(value: Any) -> LocalTask:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return LocalTask(future)


@dataclass(slots=True, kw_only=True)
class Instance:
    """One orchestration instance's mutable state (guarded by the runtime's lock)."""

    instance_id: str
    name: str
    input: Any
    created: datetime.datetime
    updated: datetime.datetime
    status: df.OrchestrationRuntimeStatus = df.OrchestrationRuntimeStatus.Pending
    output: Any = None
    custom_status: Any = None
    parent_instance_id: str | None = None
    terminate_reason: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    events: dict[str, list[Any]] = field(default_factory=dict)
    waiters: dict[str, list[concurrent.futures.Future[Any]]] = field(default_factory=dict)

    def to_status(self) -> DurableOrchestrationStatus:
        return DurableOrchestrationStatus(
            name=self.name,
            instanceId=self.instance_id,
            createdTime=self.created.isoformat(),
            lastUpdatedTime=self.updated.isoformat(),
            input=self.input,
            output=self.output,
            runtimeStatus=self.status,
            customStatus=self.custom_status,
        )


class LocalOrchestrationContext:
    """The subset of ``df.DurableOrchestrationContext`` orchestrators use, run live."""

    def __init__(self, runtime: DurableRuntime, instance: Instance) -> None:
        self._runtime = runtime
        self._instance = instance
        self._clock = instance.created
        self._uuid_counter = 0

    @property
    def instance_id(self) -> str:
        return self._instance.instance_id

    @property
    def parent_instance_id(self) -> str | None:
        return self._instance.parent_instance_id

    @property
    def is_replaying(self) -> bool:
        return False

    @property
    def current_utc_datetime(self) -> datetime.datetime:
        """Deterministic within one step: it moves only when the orchestrator resumes."""
        return self._clock

    def advance_clock(self) -> None:
        self._clock = max(self._clock, _now())

    def get_input(self) -> Any:
        return json_round_trip(self._instance.input)

    def set_custom_status(self, status: Any) -> None:
        self._runtime.update(self._instance, custom_status=json_round_trip(status))

    def new_uuid(self) -> str:
        name = f"{self.instance_id}_{self._clock.isoformat()}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def call_activity(self, name: str, input_: Any = None) -> LocalTask:
        return self._runtime.schedule_activity(name, input_, retry=None)

    def call_activity_with_retry(self, name: str, retry_options: df.RetryOptions,
                                 input_: Any = None) -> LocalTask:
        return self._runtime.schedule_activity(name, input_, retry=retry_options)

    def call_sub_orchestrator(self, name: str, input_: Any = None,
                              instance_id: str | None = None) -> LocalTask:
        child_id = instance_id or self.new_uuid()
        return self._runtime.start_child(name, child_id, input_, parent=self._instance)

    def call_sub_orchestrator_with_retry(self, name: str, retry_options: df.RetryOptions,
                                         input_: Any = None,
                                         instance_id: str | None = None) -> LocalTask:
        # A retried sub-orchestration gets a fresh id per attempt, as in Durable Functions.
        base_id = instance_id or self.new_uuid()
        return self._runtime.retry_task(
            lambda attempt: self._runtime.start_child(
                name, base_id if attempt == 1 else f"{base_id}:{attempt}", input_,
                parent=self._instance).wait(),
            retry_options, f"sub-orchestration {name}", on_pool=False)

    def task_all(self, activities: Sequence[LocalTask]) -> LocalTask:
        return WhenAllTask(activities)

    def task_any(self, activities: Sequence[LocalTask]) -> LocalTask:
        return WhenAnyTask(activities)

    def create_timer(self, fire_at: datetime.datetime) -> LocalTask:
        delay = max(0.0, (fire_at - _now()).total_seconds())
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        def _fire() -> None:
            if not future.done():
                future.set_result(None)

        timer = threading.Timer(delay, _fire)
        timer.daemon = True
        timer.start()
        return LocalTask(future)

    def wait_for_external_event(self, name: str) -> LocalTask:
        return self._runtime.wait_for_event(self._instance, name)


ActivityCallable = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    name: str
    function: ActivityCallable
    input_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Orchestrator:
    name: str
    function: Callable[[Any], Any]


class DurableRuntime:
    """Runs orchestrations in threads, activities on a bounded pool; keeps instance state."""

    def __init__(self, *, orchestrators: dict[str, Orchestrator],
                 activities: dict[str, Activity], max_workers: int = 8,
                 status_url: Callable[[str], str] = lambda instance_id: "",
                 on_done: Callable[[Instance], None] = lambda instance: None) -> None:
        self._orchestrators = orchestrators
        self._on_done = on_done
        self._activities = activities
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="activity")
        self._lock = threading.Lock()
        self._instances: dict[str, Instance] = {}
        self._status_url = status_url

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- client side -------------------------------------------------------------------
    def start(self, name: str, instance_id: str | None, client_input: Any,
              *, parent: Instance | None = None) -> tuple[Instance, bool]:
        """Start (or find) an instance; True when this call started it."""
        if name not in self._orchestrators:
            raise NotFound(f"no orchestrator function named {name!r}")
        instance_id = instance_id or uuid.uuid4().hex
        stored_input = json_round_trip(client_input)
        with self._lock:
            existing = self._instances.get(instance_id)
            if existing is not None and existing.status in _KEEP_STATES:
                log.info("orchestration %s already %s: not started again", instance_id,
                         existing.status.value)
                return existing, False
            now = _now()
            instance = Instance(instance_id=instance_id, name=name, input=stored_input,
                                created=now, updated=now,
                                parent_instance_id=parent.instance_id if parent else None)
            self._instances[instance_id] = instance
        thread = threading.Thread(target=self._run, args=(instance,), daemon=True,
                                  name=f"orchestration-{instance_id[:12]}")
        thread.start()
        return instance, True

    def get(self, instance_id: str) -> Instance | None:
        with self._lock:
            return self._instances.get(instance_id)

    def instances(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    def wait(self, instance_id: str, timeout: float | None = None) -> Instance:
        instance = self.get(instance_id)
        if instance is None:
            raise NotFound(f"no orchestration instance {instance_id!r}")
        instance.done.wait(timeout)
        return instance

    def terminate(self, instance_id: str, reason: str) -> None:
        instance = self.get(instance_id)
        if instance is None:
            raise NotFound(f"no orchestration instance {instance_id!r}")
        with self._lock:
            instance.terminate_reason = reason or "terminated"
        # Wake every waiter so the orchestrator notices at its next step.
        self._fail_waiters(instance, _Terminated())

    def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        instance = self.get(instance_id)
        if instance is None:
            raise NotFound(f"no orchestration instance {instance_id!r}")
        with self._lock:
            waiters = instance.waiters.get(name, [])
            if waiters:
                waiters.pop(0).set_result(json_round_trip(data))
                return
            instance.events.setdefault(name, []).append(json_round_trip(data))

    def status_url(self, instance_id: str) -> str:
        return self._status_url(instance_id)

    def update(self, instance: Instance, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(instance, key, value)
            instance.updated = _now()

    # --- orchestration side --------------------------------------------------------------
    def schedule_activity(self, name: str, input_: Any,
                          retry: df.RetryOptions | None) -> LocalTask:
        activity = self._activities.get(name)
        if activity is None:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_exception(OrchestrationError(f"no activity function named {name!r}"))
            return LocalTask(future)
        payload = json_round_trip(input_)

        def _once(_attempt: int) -> Any:
            result = call_user_function(activity.function, **{activity.input_name: payload})
            return json_round_trip(result)

        if retry is None:
            return LocalTask(self._pool.submit(_once, 1))
        return self.retry_task(_once, retry, f"activity {name}")

    def retry_task(self, attempt_once: Callable[[int], Any], retry: df.RetryOptions,
                   what: str, *, on_pool: bool = True) -> LocalTask:
        """Run ``attempt_once`` until it succeeds or the retry options give up.

        The delay before attempt n+1 is first_retry_interval * backoff_coefficient^(n-1)
        (Durable Functions RetryOptions; the Python class has no coefficient today, so it is
        read when present and 1 otherwise), capped by max_retry_interval when present.
        """
        first_delay = retry.first_retry_interval_in_milliseconds / 1000
        attempts = max(1, retry.max_number_of_attempts)
        coefficient = float(getattr(retry, "backoff_coefficient", 1.0) or 1.0)
        max_interval_ms = getattr(retry, "max_retry_interval_in_milliseconds", None)

        def _run() -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return attempt_once(attempt)
                except Exception as error:
                    if attempt == attempts:
                        raise
                    delay = first_delay * coefficient ** (attempt - 1)
                    if max_interval_ms:
                        delay = min(delay, max_interval_ms / 1000)
                    log.info("%s failed (attempt %s of %s), retrying in %.3fs: %s",
                             what, attempt, attempts, delay, error)
                    time.sleep(delay)
            raise AssertionError("unreachable")  # the loop returns or raises

        # Sub-orchestration retries wait on other threads, so they must not hold a pool slot.
        if not on_pool:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()

            def _thread() -> None:
                try:
                    future.set_result(_run())
                except BaseException as error:  # handed to the orchestrator
                    future.set_exception(error)

            threading.Thread(target=_thread, daemon=True).start()
            return LocalTask(future)
        return LocalTask(self._pool.submit(_run))

    def start_child(self, name: str, instance_id: str, input_: Any,
                    *, parent: Instance) -> LocalTask:
        try:
            child, _ = self.start(name, instance_id, input_, parent=parent)
        except ScanError as error:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_exception(error)
            return LocalTask(future)
        future = concurrent.futures.Future()

        def _watch() -> None:
            child.done.wait()
            if child.status is df.OrchestrationRuntimeStatus.Completed:
                future.set_result(child.output)
            else:
                future.set_exception(OrchestrationError(
                    f"sub-orchestration {name} ({instance_id}) ended {child.status.value}: "
                    f"{child.output}"))

        threading.Thread(target=_watch, daemon=True).start()
        return LocalTask(future)

    def wait_for_event(self, instance: Instance, name: str) -> LocalTask:
        with self._lock:
            buffered = instance.events.get(name)
            if buffered:
                return _completed(buffered.pop(0))
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            instance.waiters.setdefault(name, []).append(future)
            return LocalTask(future)

    def _fail_waiters(self, instance: Instance, error: BaseException) -> None:
        with self._lock:
            waiters = [future for futures in instance.waiters.values() for future in futures]
            instance.waiters.clear()
        for future in waiters:
            if not future.done():
                future.set_exception(error)

    def _run(self, instance: Instance) -> None:
        orchestrator = self._orchestrators[instance.name]
        context = LocalOrchestrationContext(self, instance)
        self.update(instance, status=df.OrchestrationRuntimeStatus.Running)
        log.info("orchestration %s (%s) started", instance.instance_id, instance.name)
        try:
            output = json_round_trip(self._drive(orchestrator.function, context, instance))
        except _Terminated:
            self.update(instance, status=df.OrchestrationRuntimeStatus.Terminated,
                        output=instance.terminate_reason)
            log.info("orchestration %s terminated", instance.instance_id)
        except Exception as error:
            log.warning("orchestration %s (%s) failed: %s", instance.instance_id,
                        instance.name, error)
            self.update(instance, status=df.OrchestrationRuntimeStatus.Failed,
                        output=f"Orchestrator function '{instance.name}' failed: {error}")
        else:
            self.update(instance, status=df.OrchestrationRuntimeStatus.Completed, output=output)
            log.info("orchestration %s completed", instance.instance_id)
        finally:
            self._on_done(instance)
            instance.done.set()

    def _drive(self, function: Callable[[Any], Any], context: LocalOrchestrationContext,
               instance: Instance) -> Any:
        started = function(context)
        if not inspect.isgenerator(started):
            return started
        generator: Generator[Any, Any, Any] = started
        send_value: Any = None
        error: BaseException | None = None
        while True:
            if instance.terminate_reason is not None:
                generator.close()
                raise _Terminated()
            try:
                yielded = generator.throw(error) if error is not None else generator.send(
                    send_value)
            except StopIteration as stop:
                return stop.value
            if not isinstance(yielded, LocalTask):
                generator.close()
                raise OrchestrationError(
                    f"orchestrator {instance.name} yielded {type(yielded).__name__}, not a task")
            send_value, error = None, None
            try:
                send_value = yielded.wait()
            except _Terminated:
                generator.close()
                raise
            except Exception as failure:
                error = failure
            context.advance_clock()


class LocalDurableClient:
    """The durable client binding's methods the app uses, backed by ``DurableRuntime``.

    Methods are ``async`` like ``df.DurableOrchestrationClient``'s, so the same ``await``
    code runs against both.
    """

    def __init__(self, runtime: DurableRuntime) -> None:
        self._runtime = runtime

    async def start_new(self, orchestration_function_name: str, instance_id: str | None = None,
                        client_input: Any = None) -> str:
        instance, _ = self._runtime.start(orchestration_function_name, instance_id, client_input)
        return instance.instance_id

    async def get_status(self, instance_id: str, show_history: bool = False,
                         show_history_output: bool = False,
                         show_input: bool = False) -> DurableOrchestrationStatus:
        """The status; an empty status (runtime_status None) for an unknown id, as in Azure."""
        instance = self._runtime.get(instance_id)
        return instance.to_status() if instance else DurableOrchestrationStatus()

    async def get_status_all(self) -> list[DurableOrchestrationStatus]:
        return [instance.to_status() for instance in self._runtime.instances()]

    async def raise_event(self, instance_id: str, event_name: str,
                          event_data: Any = None) -> None:
        self._runtime.raise_event(instance_id, event_name, event_data)

    async def terminate(self, instance_id: str, reason: str) -> None:
        self._runtime.terminate(instance_id, reason)

    async def wait_for_completion_or_create_check_status_response(
            self, request: func.HttpRequest, instance_id: str,
            timeout_in_milliseconds: int = 10000,
            retry_interval_in_milliseconds: int = 1000) -> func.HttpResponse:
        instance = self._runtime.wait(instance_id, timeout_in_milliseconds / 1000)
        if instance.done.is_set():
            return func.HttpResponse(json.dumps(instance.output), status_code=200,
                                     mimetype="application/json")
        return self.create_check_status_response(request, instance_id)

    def create_http_management_payload(self, instance_id: str) -> dict[str, str]:
        status_url = self._runtime.status_url(instance_id)
        base, _, query = status_url.partition("?")
        suffix = f"?{query}" if query else ""
        return {
            "id": instance_id,
            "statusQueryGetUri": status_url,
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}{suffix}",
            "terminatePostUri": f"{base}/terminate{suffix}",
        }

    def create_check_status_response(self, request: func.HttpRequest | None,
                                     instance_id: str) -> func.HttpResponse:
        payload = self.create_http_management_payload(instance_id)
        return func.HttpResponse(
            json.dumps(payload),
            status_code=202,
            headers={"Content-Type": "application/json",
                     "Location": payload["statusQueryGetUri"], "Retry-After": "10"},
        )


def status_http_code(instance: Instance | None) -> int:
    """The Durable Functions HTTP API's status code for GET .../instances/{id}."""
    if instance is None:
        return 404
    return {
        df.OrchestrationRuntimeStatus.Pending: 202,
        df.OrchestrationRuntimeStatus.Running: 202,
        df.OrchestrationRuntimeStatus.Completed: 200,
        df.OrchestrationRuntimeStatus.Failed: 500,
        df.OrchestrationRuntimeStatus.Terminated: 400,
    }.get(instance.status, 200)
