"""Capture: the whole event, chains, locals by trace level, context, dedup, processors, drops."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kansoku.context import context
from kansoku.errors import ErrorTracker
from kansoku.store import Store, queries
from kansoku.typing import ErrorEvent

from .conftest import T0, load_module

PAYMENTS = '''
def charge(amount, card):
    limit = 100
    if amount > limit:
        raise ValueError(f"amount {amount} over limit")


def checkout(amount, card):
    try:
        charge(amount, card)
    except ValueError as exc:
        raise RuntimeError("checkout failed") from exc


def run(amount, card="4111 1111 1111 1111"):
    try:
        checkout(amount, card)
    except RuntimeError as exc:
        return exc
'''


def _frame(path: Path, function: str, lineno: int, lines: list[str], **extra: Any) -> dict[str, Any]:
    """The stored frame for `lineno` of the generated module (3 lines of context each side)."""
    at = lineno - 1
    return {"filename": str(path), "abs_path": str(path), "module": "payments", "function": function,
            "lineno": lineno, "in_app": True, "context_line": lines[at],
            "pre_context": lines[max(at - 3, 0):at], "post_context": lines[at + 1:at + 4], **extra}


def _stored(store: Store, event_id: str) -> dict[str, Any]:
    group = queries.get_group(store.engine, event_id, events=200)
    assert group is not None
    return next(e for e in group["events"] if e["event_id"] == event_id)


def test_whole_event(tmp_path: Path, store: Store, make_tracker: Callable[..., ErrorTracker],
                     no_internal_errors: None) -> None:
    """A captured chain is stored as exactly this event: frames, source, request, user, ids, identity."""
    tracker = make_tracker(version="2.1.0", environment="test")
    path = tmp_path / "payments.py"
    payments = load_module(path, PAYMENTS, "payments")
    lines = PAYMENTS.replace("4111 1111 1111 1111", "[REDACTED CARD]").splitlines()  # source is redacted too
    request = {"method": "POST", "route": "/orders", "url": "http://shop/orders", "client": "10.1.2.3"}
    with context(request_id="req-1", trace_id="a" * 32, span_id="b" * 16, user_id="u-7", tenant="acme"):
        tracker.breadcrumb_processor(None, "info",
                                     {"event": "cart loaded", "request_id": "req-1", "logger": "shop"})
        event_id = tracker.capture(payments.run(500), request=request, tags={"feature": "checkout"},
                                   order_id=7)
    assert event_id == f"{1:032x}"
    assert tracker.flush(10)
    cause_frames = [_frame(path, "checkout", 10, lines), _frame(path, "charge", 5, lines)]
    raised_frames = [_frame(path, "run", 17, lines), _frame(path, "checkout", 12, lines)]
    parts = ["type:ValueError", "frame:payments.checkout", "frame:payments.charge",
             "type:RuntimeError", "frame:payments.run", "frame:payments.checkout"]
    stored = _stored(store, event_id)
    assert stored == {
        "event_id": event_id, "timestamp": T0 + 2, "exception_type": "RuntimeError",
        "message": "checkout failed", "title": "RuntimeError: checkout failed",
        "culprit": "payments.checkout", "group_key": stored["group_key"], "fingerprint_parts": parts,
        "severity": "low", "category": "application", "level": "error", "service": "shop",
        "environment": "test", "release": "2.1.0", "host": stored["host"], "handled": True,
        "mechanism": "manual", "request_id": "req-1", "trace_id": "a" * 32, "span_id": "b" * 16,
        "user": {"id": "u-7"}, "request": request, "tags": {"feature": "checkout"},
        "extra": {"order_id": 7, "context": {"tenant": "acme"}},
        "breadcrumbs": [{"timestamp": T0 + 1, "level": "info", "logger": "shop", "message": "cart loaded",
                         "category": ""}],
        "exceptions": [
            {"type": "ValueError", "module": "builtins", "message": "amount 500 over limit",
             "relation": "cause", "frames": cause_frames},
            {"type": "RuntimeError", "module": "builtins", "message": "checkout failed", "relation": "",
             "frames": raised_frames},
        ],
    }
    assert len(stored["group_key"]) == 64 and stored["host"]


def test_locals_only_at_verbose_and_redacted(tmp_path: Path, store: Store,
                                             make_tracker: Callable[..., ErrorTracker]) -> None:
    """At trace level VERBOSE in-app frames carry their locals, redacted; below it they carry none."""
    payments = load_module(tmp_path / "payments.py", PAYMENTS, "payments")
    verbose, quiet = make_tracker(trace_level="VERBOSE"), make_tracker(trace_level="DETAILED")
    with_locals = verbose.capture(payments.run(500))
    without = quiet.capture(payments.run(500))
    assert verbose.flush(10) and quiet.flush(10)
    charge = _stored(store, with_locals)["exceptions"][0]["frames"][-1]
    assert charge["locals"] == {"amount": 500, "card": "[REDACTED CARD]", "limit": 100}
    assert all("locals" not in f for e in _stored(store, without)["exceptions"] for f in e["frames"])


def test_one_exception_seen_twice_is_one_event(store: Store,
                                               make_tracker: Callable[..., ErrorTracker]) -> None:
    """Logged, then captured again by the middleware: the same id, one event, with the request."""
    tracker = make_tracker()
    exc = ValueError("boom")
    line = tracker.log_processor(None, "error", {"event": "failed", "exc_info": exc, "logger": "app"})
    request = {"method": "GET", "route": "/x", "url": "/x?token=abcdef123456"}
    assert tracker.capture(exc, request=request, mechanism="middleware", handled=False) == line["event_id"]
    assert tracker.flush(10)
    group = queries.get_group(store.engine, line["event_id"])
    assert group is not None and group["count"] == 1
    event = group["events"][0]
    assert (event["mechanism"], event["handled"], event["request"]) == (
        "logging", False, {"method": "GET", "route": "/x", "url": "/x?token=[REDACTED]"})


def test_log_processor_captures_errors_with_exc_info_only(store: Store,
                                                          make_tracker: Callable[..., ErrorTracker]) -> None:
    """ERROR+ with exc_info is captured with the log's fields; INFO, no exc_info, kansoku's logs are not."""
    tracker = make_tracker()
    try:
        raise KeyError("sku-1")
    except KeyError:
        line = tracker.log_processor(None, "exception", {
            "event": "lookup failed", "exc_info": True, "logger": "shop.db", "sku": "sku-1",
            "category": "database", "level": "error", "timestamp": "t"})
    odd = tracker.log_processor(None, "critical", {  # log fields named like capture's options are data
        "event": "odd", "exc_info": ValueError("odd"), "mechanism": "x", "handled": 1, "user": "bob",
        "tags": 3, "fingerprint": "f", "request": "r", "severity": "high", "level": "critical"})
    untouched = [tracker.log_processor(None, "info", {"event": "x", "exc_info": ValueError("a")}),
                 tracker.log_processor(None, "error", {"event": "x"}),
                 tracker.log_processor(None, "error",
                                       {"event": "x", "exc_info": ValueError("b"), "logger": "kansoku.web"})]
    assert all("event_id" not in d for d in untouched)
    assert tracker.flush(10)
    stored = _stored(store, line["event_id"])
    assert (stored["category"], stored["mechanism"], stored["extra"]) == (
        "database", "logging", {"logger": "shop.db", "log_message": "lookup failed", "sku": "sku-1"})
    odd_event = _stored(store, odd["event_id"])
    assert (odd_event["mechanism"], odd_event["severity"], odd_event["level"], "user" in odd_event) == (
        "logging", "high", "fatal", False)
    assert odd_event["extra"] == {"logger": "", "log_message": "odd", "mechanism": "x", "handled": 1,
                                  "user": "bob", "tags": 3, "fingerprint": "f", "request": "r"}
    assert tracker.stats()["captured"] == 2


def test_breadcrumbs_are_per_request_and_bounded(make_tracker: Callable[..., ErrorTracker]) -> None:
    """Each request keeps its last N records; the least recently used requests are forgotten."""
    tracker = make_tracker()
    crumbs = tracker.breadcrumbs
    crumbs.max_requests = 2
    for n in range(30):
        tracker.breadcrumb_processor(None, "info", {"event": f"step {n}", "request_id": "r1"})
    tracker.breadcrumb_processor(None, "info", {"event": "other", "request_id": "r2"})
    tracker.breadcrumb_processor(None, "info", {"event": "third", "request_id": "r3"})
    tracker.breadcrumb_processor(None, "info", {"event": "no request"})
    itself = {"event": "an event itself", "request_id": "r3", "exc_info": True}
    tracker.breadcrumb_processor(None, "error", itself)
    assert crumbs.get("r1") == []  # evicted
    assert [c["message"] for c in crumbs.get("r3")] == ["third"]
    crumbs.max_requests = 10
    for n in range(30):
        tracker.breadcrumb_processor(None, "info", {"event": f"step {n}", "request_id": "r4"})
    assert [c["message"] for c in crumbs.get("r4")] == [f"step {n}" for n in range(10, 30)]


def test_processors_change_drop_and_regroup(store: Store, make_tracker: Callable[..., ErrorTracker],
                                            no_internal_errors: None) -> None:
    """A processor sees the redacted event, may change it, regroup it (fingerprint) or drop it (None)."""
    tracker = make_tracker()
    seen: list[str] = []

    def tag_and_route(event: ErrorEvent) -> ErrorEvent | None:
        seen.append(event["message"])
        if "ignore me" in event["message"]:
            return None
        event.setdefault("tags", {})["team"] = "payments"
        if "regroup" in event["message"]:
            event["fingerprint"] = ["payments"]
            event.setdefault("extra", {})["note"] = "password=hunter2"
        return event

    tracker.add_processor(tag_and_route)
    kept = tracker.capture(ValueError("kept password=hunter2"))
    dropped = tracker.capture(ValueError("ignore me"))
    moved = tracker.capture(ValueError("regroup"))
    assert tracker.flush(10)
    assert seen == ["kept password=[REDACTED]", "ignore me", "regroup"]
    assert _stored(store, kept)["tags"] == {"team": "payments"}
    assert queries.get_group(store.engine, dropped) is None
    regrouped = _stored(store, moved)
    assert regrouped["fingerprint_parts"] == ["custom:payments"]
    assert regrouped["extra"] == {"note": "password=[REDACTED]"}
    assert tracker.stats()["filtered"] == 1


def test_a_failing_processor_is_reported_and_the_event_kept(
        store: Store, make_tracker: Callable[..., ErrorTracker]) -> None:
    """A processor that raises does not lose the event; the failure is counted."""
    from kansoku import _safety

    tracker = make_tracker()
    before = _safety.internal_error_count("errors.processor")

    def broken(event: ErrorEvent) -> ErrorEvent:
        raise RuntimeError("processor bug")

    tracker.add_processor(broken)
    event_id = tracker.capture(ValueError("x"))
    assert tracker.flush(10)
    assert queries.get_group(store.engine, event_id) is not None
    assert _safety.internal_error_count("errors.processor") == before + 1


def test_full_queue_drops_counts_and_returns_no_id(store: Store,
                                                   make_tracker: Callable[..., ErrorTracker]) -> None:
    """When the queue is full capture returns "" at once, counts the drop, and stores what it accepted."""
    tracker = make_tracker(queue_size=10)
    gate, entered = threading.Event(), threading.Event()

    def hold(event: ErrorEvent) -> ErrorEvent:
        entered.set()
        gate.wait(10)
        return event

    tracker.add_processor(hold)
    first = tracker.capture(ValueError("same"))
    assert entered.wait(10)  # the worker holds the first event; the queue has room for ten
    ids = [tracker.capture(ValueError("same")) for n in range(12)]
    gate.set()
    assert tracker.flush(10)
    accepted = [i for i in ids if i]
    assert (len(accepted), ids[10:], tracker.dropped) == (10, ["", ""], 2)
    group = queries.get_group(store.engine, first)
    assert group is not None and group["count"] == 11


def test_capture_without_an_exception_takes_the_one_being_handled(
        store: Store, make_tracker: Callable[..., ErrorTracker]) -> None:
    """capture() inside `except` records the exception being handled; outside, it records nothing."""
    tracker = make_tracker()
    assert tracker.capture() == ""
    try:
        raise LookupError("inside")
    except LookupError:
        event_id = tracker.capture()
    assert tracker.flush(10)
    assert _stored(store, event_id)["message"] == "inside"


def test_debug_snapshots_join_the_event(store: Store, make_tracker: Callable[..., ErrorTracker]) -> None:
    """A snapshot given to capture (or left on the exception by kansoku.debug) is stored, redacted."""
    tracker = make_tracker()
    given = tracker.capture(ValueError("a"), snapshot={"function": "pay", "locals": {"password": "x"}})
    exc = ValueError("b")
    exc.__kansoku_snapshot__ = {"function": "ship"}  # type: ignore[attr-defined]
    left = tracker.capture(exc)
    assert tracker.flush(10)
    assert _stored(store, given)["snapshot"] == {"function": "pay", "locals": {"password": "[REDACTED]"}}
    assert _stored(store, left)["snapshot"] == {"function": "ship"}
    assert "snapshot" not in _stored(store, given).get("extra", {})


def test_capture_rejects_unknown_severity_in_strict_mode(make_tracker: Callable[..., ErrorTracker]) -> None:
    """An unknown severity is an internal error: raised in strict mode (tests), reported otherwise."""
    tracker = make_tracker()
    with pytest.raises(ValueError, match="severity='huge'"):
        tracker.capture(ValueError("x"), severity="huge")


def test_without_a_store_listeners_are_not_called_but_capture_works(
        make_tracker: Callable[..., ErrorTracker]) -> None:
    """engine=None: capture returns ids and processors run; nothing is stored, nothing is lost."""
    tracker = make_tracker(engine=None)
    seen: list[str] = []
    tracker.add_processor(lambda e: seen.append(e["event_id"]) or e)  # type: ignore[func-returns-value]
    event_id = tracker.capture(ValueError("x"))
    assert tracker.close(10)
    assert seen == [event_id]


@pytest.mark.slow
def test_a_forked_worker_process_stores_its_own_events(store: Store) -> None:
    """After fork (gunicorn --preload), the child starts its own worker and connections; no event is lost."""
    import os

    from kansoku.settings import load_settings

    tracker = ErrorTracker(load_settings(service_name="shop"), store.engine)  # random ids, as in production
    parent_id = tracker.capture(ValueError("same"))
    assert tracker.flush(10)
    pid = os.fork()
    if pid == 0:  # the child: capture, flush, leave without running the parent's test machinery
        ok = bool(tracker.capture(ValueError("same"))) and tracker.close(10)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tracker.capture(ValueError("same"))
    assert tracker.flush(10)
    group = queries.get_group(store.engine, parent_id)
    tracker.close(5)
    assert group is not None and group["count"] == 3
