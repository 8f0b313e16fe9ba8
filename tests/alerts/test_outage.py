"""Outage: a channel answering 500, then hanging, then refusing connections; nothing lost or doubled."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine, Dispatcher, outbox, parse_alerting
from kansoku.store.tables import delivery_attempts
from kansoku.store.tables import outbox as table


def _setup(store: Engine, clock: Any, url: str, **channel: Any) -> tuple[AlertEngine, Dispatcher]:
    config = parse_alerting({
        "channels": [{"name": "hook", "type": "webhook", "url": url + "/in", "timeout": 0.3, **channel}],
        "rules": [{"name": "crit", "suppression_minutes": 0}], "group_wait_seconds": 0,
    })
    return AlertEngine(config, store, clock=clock), Dispatcher(config, store, clock=clock, rng=lambda: 1.0)


def _rows(store: Engine) -> list[tuple[str, str, int]]:
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(table.c.group_key, table.c.status, table.c.attempts).order_by(table.c.id))]


@pytest.mark.slow
def test_500_timeout_refused_then_recovery(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Every notification written during the outage is delivered once after recovery."""
    port = receiver.server.server_address[1]
    engine, dispatcher = _setup(store, clock, receiver.url)

    receiver.responses = [(500, {}, b"oops")]
    engine.on_error(kit.event("a"), kit.change("a"))
    dispatcher.run_once()

    clock.advance(60)
    receiver.responses = [(503, {}, b"slow")]
    receiver.delay = 1.0  # longer than the channel's 0.3 s timeout
    hung = threading.Thread(target=dispatcher.run_once)
    hung.start()
    engine.on_error(kit.event("b"), kit.change("b"))  # errors keep being recorded while the channel hangs
    hung.join()
    receiver.delay = 0.0

    kit.stop_receiver(receiver)  # connection refused from now on
    clock.advance(60)
    engine.on_error(kit.event("c"), kit.change("c"))
    dispatcher.run_once()
    assert {status for _, status, _ in _rows(store)} == {"pending"}

    back = kit.start_receiver(port)  # recovery on the same address
    try:
        clock.advance(3600)
        assert dispatcher.run_once() == 3
        assert dispatcher.run_once() == 0
        accepted = [r for r in back.requests if r.status == 200]
        keys = {a["group_key"]: r.headers["idempotency-key"] for r in accepted for a in r.json()["alerts"]}
        assert sorted(keys) == ["a", "b", "c"] and len(set(keys.values())) == 3
        # each notification goes again as the message it first went out in, under that key: a
        # receiver that processed the timed-out POST of b recognises it
        first = {a["group_key"]: r.headers["idempotency-key"] for r in receiver.requests for a in r.json()["alerts"]}
        assert first == {"a": keys["a"], "b": keys["b"]}
        assert [(g, s) for g, s, _ in _rows(store)] == [("a", "sent"), ("b", "sent"), ("c", "sent")]
    finally:
        kit.stop_receiver(back)
    with store.connect() as conn:
        errors = conn.execute(select(delivery_attempts.c.error).where(delivery_attempts.c.ok.is_(False))
                              .order_by(delivery_attempts.c.id)).scalars().all()
    assert errors[0] == "webhook answered HTTP 500: oops"
    assert any("no answer within 0.3 s" in e or "timed out" in e for e in errors)
    assert any("ConnectError" in e for e in errors)


def test_dead_letter_then_retry(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """After the last attempt the row is dead; retrying it delivers once the channel is back."""
    receiver.default = (500, {}, b"down")
    engine, dispatcher = _setup(store, clock, receiver.url, max_attempts=3)
    engine.on_error(kit.event(), kit.change())
    for _ in range(3):
        dispatcher.run_once()
        clock.advance(3600)
    assert _rows(store) == [("g1", "dead", 3)]
    assert dispatcher.run_once() == 0  # dead rows are left alone
    receiver.default = (200, {}, b"ok")
    with store.connect() as conn:
        row_id = conn.execute(select(table.c.id)).scalar_one()
    assert outbox.retry_dead(store, row_id, clock())
    assert dispatcher.run_once() == 1
    assert _rows(store) == [("g1", "sent", 1)]
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]


def test_a_retried_message_keeps_its_key_and_its_groups(kit: Any, store: Engine, clock: Any,
                                                        receiver: Any) -> None:
    """Two groups fail as one message; a third arrives: the retry is the same two under the same key."""
    engine, dispatcher = _setup(store, clock, receiver.url)
    receiver.responses = [(500, {}, b"oops")]
    engine.on_error(kit.event("a"), kit.change("a"))
    engine.on_error(kit.event("b"), kit.change("b", group_id=8))
    assert dispatcher.run_once() == 2
    [failed] = receiver.requests
    engine.on_error(kit.event("c"), kit.change("c", group_id=9))
    clock.advance(3600)
    assert dispatcher.run_once() == 3
    sent = {tuple(sorted(a["group_key"] for a in r.json()["alerts"])): r.headers["idempotency-key"]
            for r in receiver.requests[1:]}
    assert sent[("a", "b")] == failed.headers["idempotency-key"]
    assert set(sent) == {("a", "b"), ("c",)} and sent[("c",)] != sent[("a", "b")]
