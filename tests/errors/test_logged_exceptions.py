"""Exceptions given to a log call (`exc_info=e`, the chapter's `error=e`, the timing decorators) are events."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from kansoku.errors import ErrorTracker
from kansoku.logs import configure_logging, flush, get_logger, log_database_operation, log_execution_time
from kansoku.settings import load_settings
from kansoku.store import Store, queries


@pytest.fixture
def logged(make_tracker: Callable[..., ErrorTracker]) -> Iterator[tuple[ErrorTracker, io.StringIO]]:
    """A tracker wired into the log pipeline as the runtime wires it, lines written to a buffer."""
    tracker = make_tracker()
    buffer = io.StringIO()
    configure_logging(load_settings(log_format="json", stdlib_logging=False), stream=buffer,
                      hooks=[tracker.breadcrumb_processor, tracker.log_processor])
    yield tracker, buffer
    configure_logging(load_settings(log_format="json", stdlib_logging=False))


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    flush()
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def _event(store: Store, event_id: str) -> dict[str, Any]:
    group = queries.get_group(store.engine, event_id)
    assert group is not None, f"no stored event {event_id!r}"
    return dict(next(e for e in group["events"] if e["event_id"] == event_id))


def _lookup(sku: str) -> None:
    raise KeyError(f"{sku} password=hunter2")


def _caught() -> BaseException:
    try:
        _lookup("sku-1")
    except KeyError as exc:
        return exc
    raise AssertionError("not raised")


def test_exc_info_outside_an_except_block_is_a_stored_event(
        store: Store, logged: tuple[ErrorTracker, io.StringIO], no_internal_errors: None) -> None:
    """log.error(msg, exc_info=e) after the except block: the line has the traceback and the event's id."""
    tracker, buffer = logged
    get_logger("shop.orders").error("lookup failed", exc_info=_caught(), order_id=7)
    assert tracker.flush(10)
    [line] = _lines(buffer)
    assert line["exception"]["type"] == "KeyError"
    assert line["exception"]["message"] == "'sku-1 password=[REDACTED]'"
    assert [f["function"] for f in line["exception"]["frames"]] == ["_caught", "_lookup"]
    event = _event(store, line["event_id"])
    assert (event["exception_type"], event["mechanism"], event["extra"]["order_id"]) == ("KeyError", "logging", 7)


def test_exc_info_inside_an_except_block_is_a_stored_event(
        store: Store, logged: tuple[ErrorTracker, io.StringIO]) -> None:
    """log.error(msg, exc_info=e) while handling e: one stored event, its id on the line."""
    tracker, buffer = logged
    try:
        _lookup("sku-2")
    except KeyError as exc:
        get_logger("shop.orders").error("lookup failed", exc_info=exc)
    assert tracker.flush(10)
    [line] = _lines(buffer)
    assert line["exception"]["frames"][-1]["function"] == "_lookup"
    assert _event(store, line["event_id"])["message"] == "'sku-2 password=[REDACTED]'"


def test_the_chapters_error_keyword_is_the_exception(
        store: Store, logged: tuple[ErrorTracker, io.StringIO]) -> None:
    """log.error(msg, error=e), the chapter's form, gets the traceback and a stored event, in or out of except."""
    tracker, buffer = logged
    log = get_logger("shop.orders")
    log.error("outside", error=_caught())
    try:
        _lookup("sku-3")
    except KeyError as exc:
        log.error("inside", error=exc)
    log.error("a plain string stays a field", error="timeout")
    assert tracker.flush(10)
    outside, inside, plain = _lines(buffer)
    for line in (outside, inside):
        assert line["exception"]["type"] == "KeyError"
        assert _event(store, line["event_id"])["exception_type"] == "KeyError"
    assert (plain["error"], "exception" in plain, "event_id" in plain) == ("timeout", False, False)


def test_failures_of_the_timing_decorators_are_stored_events(
        store: Store, logged: tuple[ErrorTracker, io.StringIO]) -> None:
    """log_execution_time and log_database_operation log a failure with its traceback, as a stored event."""
    tracker, buffer = logged

    @log_execution_time("checkout")
    def checkout() -> None:
        _lookup("sku-4")

    @log_database_operation("select", table="orders")
    async def select() -> None:
        raise ConnectionRefusedError("database connection refused")

    with pytest.raises(KeyError):
        checkout()
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(select())
    assert tracker.flush(10)
    timed, database = _lines(buffer)
    assert (timed["event"], timed["exception"]["frames"][-1]["function"]) == ("checkout failed", "_lookup")
    assert _event(store, timed["event_id"])["exception_type"] == "KeyError"
    assert (database["event"], database["category"], database["table"]) == ("select failed", "database", "orders")
    assert _event(store, database["event_id"])["category"] == "database"
