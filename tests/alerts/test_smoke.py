"""End to end in one process: an event fires a rule, the dispatcher delivers it to a webhook."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.store.tables import delivery_attempts, outbox


def test_event_to_webhook(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """One critical error fires `critical_errors`-like rule; the webhook receives it once."""
    config = parse_alerting({
        "channels": [{"name": "ops", "type": "webhook", "url": receiver.url + "/hook", "secret": "s3"}],
        "rules": [{"name": "crit", "severity_threshold": "critical", "error_count_threshold": 2}],
        "group_wait_seconds": 0,
    })
    engine = AlertEngine(config, store, clock=clock)
    dispatcher = Dispatcher(config, store, clock=clock)
    engine.on_error(kit.event(), kit.change())
    assert dispatcher.run_once() == 0
    engine.on_error(kit.event(), kit.change(count=2))
    assert dispatcher.run_once() == 1
    assert len(receiver.requests) == 1
    body = receiver.requests[0].json()
    assert body["rule"] == "crit" and body["alerts"][0]["window_count"] == 2
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.status)).scalars().all() == ["sent"]
        assert conn.execute(select(delivery_attempts.c.ok)).scalars().all() == [True]
