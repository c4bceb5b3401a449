"""Timer schedules as Azure Functions reads them, and a scheduler thread that fires them.

A schedule is a six-field NCRONTAB expression ``{second} {minute} {hour} {day} {month}
{day-of-week}`` (Azure Functions timer trigger docs, "NCRONTAB expressions"), a TimeSpan
``hh:mm:ss`` (an interval, App Service plans only), or ``%NAME%``, which names an app setting
holding either.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from croniter import croniter

from scanning.config import SETTINGS
from scanning.errors import ConfigError

log = logging.getLogger(__name__)

_SETTING_REFERENCE = re.compile(r"^%([A-Za-z0-9_.:-]+)%$")
_TIMESPAN = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    expression: str  # after resolving a %SETTING% reference

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        timespan = _TIMESPAN.match(self.expression)
        if timespan:
            hours, minutes, seconds = (int(part) for part in timespan.groups())
            return moment + datetime.timedelta(hours=hours, minutes=minutes, seconds=seconds)
        # NCRONTAB puts seconds first; croniter's default puts them last.
        result = croniter(self.expression, moment, second_at_beginning=True).get_next(
            datetime.datetime)
        return result if isinstance(result, datetime.datetime) else moment


def resolve_schedule(schedule: str) -> Schedule:
    """Resolve ``%NAME%`` from the environment (then the documented default) and validate."""
    expression = schedule.strip()
    reference = _SETTING_REFERENCE.match(expression)
    if reference:
        name = reference.group(1)
        expression = os.environ.get(name, SETTINGS.get(name, "")).strip()
        if not expression:
            raise ConfigError(f"timer schedule setting {name} is not set")
    if _TIMESPAN.match(expression):
        return Schedule(expression=expression)
    if len(expression.split()) != 6:
        raise ConfigError(
            f"timer schedule {expression!r} is not a six-field NCRONTAB expression")
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise ConfigError(f"timer schedule {expression!r} is not valid NCRONTAB")
    return Schedule(expression=expression)


class TimerScheduler:
    """Fires each timer at its next due time; one run of a timer at a time (Azure holds a
    singleton lock per timer function, so a run that overlaps the next tick skips it)."""

    def __init__(self, timers: dict[str, Schedule],
                 fire: Callable[[str, datetime.datetime], None],
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(
                     datetime.UTC)) -> None:
        self._timers = timers
        self._fire = fire
        self._clock = clock
        self._stop = threading.Event()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="timers")

    def start(self) -> None:
        if self._timers:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        now = self._clock()
        due = {name: schedule.next_after(now) for name, schedule in self._timers.items()}
        while not self._stop.is_set():
            name, when = min(due.items(), key=lambda item: item[1])
            wait = (when - self._clock()).total_seconds()
            if wait > 0 and self._stop.wait(min(wait, 60.0)):
                return
            if self._clock() < when:
                continue
            due[name] = self._timers[name].next_after(when)
            self._start_run(name, when)

    def _start_run(self, name: str, when: datetime.datetime) -> None:
        with self._lock:
            if name in self._running:
                log.warning("timer %s still running at %s: this tick is skipped", name, when)
                return
            self._running.add(name)

        def _run() -> None:
            try:
                self._fire(name, when)
            except Exception:
                log.exception("timer %s failed", name)
            finally:
                with self._lock:
                    self._running.discard(name)

        threading.Thread(target=_run, daemon=True, name=f"timer-{name}").start()
