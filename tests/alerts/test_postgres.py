"""The whole path on PostgreSQL: claim, outbox, dispatch, resolution, silences, HTTP statistics."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.silences import create_silence
from kansoku.store.tables import alert_state, outbox, request_stats

pytestmark = pytest.mark.postgres


def test_trigger_resolve_and_http_rule_on_postgres(
    kit: Any, pg_store: Engine, clock: Any, receiver: Any
) -> None:
    """Trigger, suppression count, resolve and an HTTP ratio rule all work against PostgreSQL."""
    config = parse_alerting({
        "channels": [{"name": "w", "type": "webhook", "url": receiver.url}],
        "rules": [{"name": "r", "suppression_minutes": 10},
                  {"name": "5xx", "kind": "http_error_ratio", "threshold": 0.1, "min_requests": 10}],
        "group_wait_seconds": 0,
    })
    engine = AlertEngine(config, pg_store, clock=clock)
    dispatcher = Dispatcher(config, pg_store, clock=clock)
    for _ in range(3):
        engine.on_error(kit.event(), kit.change())
    create_silence(pg_store, now=clock(), ends_at=clock() + 60, group_key="other")
    with pg_store.begin() as conn:
        conn.execute(insert(request_stats).values(minute=int(clock() // 60), service="shop", instance="a:1",
                                                  requests=50, errors_4xx=0, errors_5xx=10, duration_sum=1.0,
                                                  buckets={}))
    engine.tick()
    assert dispatcher.run_once() == 2
    engine.on_resolve("g1")
    assert dispatcher.run_once() == 1
    assert [(r.json()["rule"], r.json()["status"]) for r in receiver.requests] in (
        [("r", "firing"), ("5xx", "firing"), ("r", "resolved")],
        [("5xx", "firing"), ("r", "firing"), ("r", "resolved")])
    with pg_store.connect() as conn:
        assert set(conn.execute(select(outbox.c.status)).scalars()) == {"sent"}
        states = dict(conn.execute(select(alert_state.c.rule, alert_state.c.suppressed)).all())
    engine.close()
    assert states == {"r": 2, "5xx": 0}
