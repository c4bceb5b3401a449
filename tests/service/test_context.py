"""The worker's services singleton: forgetting it while another thread builds it.

The integration tests switch ``STORE_PREFIX`` between tests and forget the singletons. A build
a late thread started with the previous settings used to land after the reset, so a whole test
wrote into the previous test's namespace (CI, twelfth session: "image listed not met within
20.0s" in ``test_an_image_is_scanning_while_its_scan_runs``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from scanning.service import context


def test_forgetting_waits_for_a_build_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    building, release = threading.Event(), threading.Event()
    built = object()

    def slow_create(cls: Any, store: Any) -> Any:
        building.set()
        release.wait(10)
        return built

    monkeypatch.setattr(context, "_services", None)
    monkeypatch.setattr(context.Store, "from_settings", staticmethod(lambda: None))
    monkeypatch.setattr(context.Services, "create", classmethod(slow_create))
    builder = threading.Thread(target=context.services)
    builder.start()
    assert building.wait(10)
    forgot = threading.Event()
    forgetter = threading.Thread(target=lambda: (context.forget_services(), forgot.set()))
    forgetter.start()
    waited = not forgot.wait(0.2)  # still building: forgetting must wait for it
    release.set()
    builder.join(10)
    forgetter.join(10)
    # The build landed first and was then forgotten, never the other way round.
    assert (waited, forgot.is_set(), context._services) == (True, True, None)


def test_services_after_forgetting_are_built_again(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[object] = []

    def create(cls: Any, store: Any) -> Any:
        builds.append(object())
        return builds[-1]

    monkeypatch.setattr(context, "_services", None)
    monkeypatch.setattr(context.Store, "from_settings", staticmethod(lambda: None))
    monkeypatch.setattr(context.Services, "create", classmethod(create))
    first, again = context.services(), context.services()
    context.forget_services()
    rebuilt = context.services()
    assert (first is again, rebuilt is builds[1], len(builds)) == (True, True, 2)
