"""Hooks: uncaught exceptions of the main thread, of other threads, and asyncio's are captured."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

from kansoku.errors import ErrorTracker, install_asyncio_handler, install_threading_excepthook
from kansoku.store import Store, queries


def _only_event(store: Store) -> dict[str, Any]:
    items = queries.list_groups(store.engine)["items"]
    assert len(items) == 1
    group = queries.get_group(store.engine, items[0]["id"])
    assert group is not None
    return dict(group["events"][0])


def test_threading_excepthook_captures_and_chains(store: Store, make_tracker: Callable[..., ErrorTracker],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception that ends a thread becomes an unhandled event; the previous hook still runs."""
    previous: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: previous.append(args.exc_value))
    tracker = make_tracker()
    uninstall = install_threading_excepthook(tracker)

    def work() -> None:
        raise RuntimeError("worker died")

    thread = threading.Thread(target=work, name="worker-1")
    thread.start()
    thread.join()
    uninstall()
    assert tracker.flush(10)
    event = _only_event(store)
    assert (event["mechanism"], event["handled"], event["extra"], event["message"]) == (
        "threading", False, {"thread": "worker-1"}, "worker died")
    assert [type(e) for e in previous] == [RuntimeError]
    assert threading.excepthook is not None and getattr(threading.excepthook, "__name__", "") == "<lambda>"


async def test_asyncio_handler_captures_and_chains(store: Store,
                                                   make_tracker: Callable[..., ErrorTracker]) -> None:
    """An exception asyncio reports (never retrieved...) is captured; the previous handler still runs."""
    loop = asyncio.get_running_loop()
    previous: list[str] = []
    loop.set_exception_handler(lambda lp, context: previous.append(context["message"]))
    tracker = make_tracker()
    uninstall = install_asyncio_handler(tracker)
    loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": KeyError("k")})
    loop.call_exception_handler({"message": "no exception here"})
    uninstall()
    loop.set_exception_handler(None)
    assert tracker.flush(10)
    event = _only_event(store)
    assert (event["mechanism"], event["extra"]) == (
        "asyncio", {"asyncio_message": "Task exception was never retrieved"})
    assert previous == ["Task exception was never retrieved", "no exception here"]


@pytest.mark.slow
def test_uncaught_exception_is_stored_before_the_process_ends(db_url: str, store: Store) -> None:
    """sys.excepthook: the event is flushed to the store, then Python prints the traceback as usual."""
    script = textwrap.dedent(f"""
        from kansoku.errors import ErrorTracker, install_hooks
        from kansoku.settings import load_settings
        from kansoku.store import Store
        store = Store({db_url!r})
        tracker = ErrorTracker(load_settings(service_name="shop"), store.engine)
        tracker.start()
        install_hooks(tracker)
        raise LookupError("config missing")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert "LookupError: config missing" in done.stderr  # the previous hook printed it
    event = _only_event(store)
    assert (event["mechanism"], event["handled"], event["level"]) == ("excepthook", False, "fatal")
