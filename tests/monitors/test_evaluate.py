"""Evaluation of monitors: missed, failed and over-runtime runs notified once, then the recovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine
from kansoku.alerts.rules import parse_alerting
from kansoku.monitors import MonitorSpec
from kansoku.store import create_store_engine
from kansoku.store import monitors as stored
from kansoku.store.tables import metadata, outbox

T0 = 1_800_000_000.0
WEBHOOK = {"channels": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite store with the schema."""
    made = create_store_engine(f"sqlite:///{tmp_path / 'kansoku.db'}")
    metadata.create_all(made)
    yield made
    made.dispose()


def alerting(engine: Engine, **extra: Any) -> AlertEngine:
    """An alert engine with one webhook channel (and the given rules)."""
    return AlertEngine(parse_alerting({**WEBHOOK, "group_wait_seconds": 0, **extra}), engine)


def rows(engine: Engine) -> list[tuple[str, str, str, str]]:
    """(kind, channel, rule, title) of each outbox row, in order."""
    with engine.connect() as conn:
        found = conn.execute(select(outbox.c.kind, outbox.c.channel, outbox.c.rule, outbox.c.payload)
                             .order_by(outbox.c.id)).all()
    return [(kind, channel, rule, payload["item"]["title"]) for kind, channel, rule, payload in found]


SPEC = MonitorSpec.make("nightly", "1h", margin="5m", max_runtime="10m")


def test_missed_run_notifies_once_across_evaluators_then_recovers(engine: Engine) -> None:
    """Two engines evaluating the same store: one notification for a missed run, one recovery after ok."""
    first, second = alerting(engine), alerting(engine)
    stored.checkin(engine, "nightly", "ok", now=T0, spec=SPEC)
    assert first.evaluate_monitors(T0 + 3600 + 299) == []  # within the margin
    late = T0 + 3600 + 301
    assert first.evaluate_monitors(late) == ["missed:nightly"]
    assert second.evaluate_monitors(late) == []
    assert first.evaluate_monitors(late + 1) == [] and second.evaluate_monitors(late + 1) == []
    assert rows(engine) == [("trigger", "ops", "monitors",
                             "Monitor nightly missed its run due 2027-01-15T09:00:00Z (every 3600s)")]
    stored.checkin(engine, "nightly", "ok", now=late + 10)
    assert [*second.evaluate_monitors(late + 11), *first.evaluate_monitors(late + 11)] == ["recovered:nightly"]
    assert [r[0] for r in rows(engine)] == ["trigger", "resolve"]
    found = stored.get_monitor(engine, "nightly")
    assert found is not None
    assert [c["status"] for c in found["checkins"]] == ["ok", "missed", "ok"]
    assert found["alerting"] is False and found["next_expected_at"] == late + 10 + 3600


def test_failed_run_and_over_runtime_run(engine: Engine) -> None:
    """An `error` check-in and a run in progress past max_runtime each notify once."""
    alerts = alerting(engine)
    opened = stored.checkin(engine, "nightly", "in_progress", now=T0, spec=SPEC)
    assert alerts.evaluate_monitors(T0 + 599) == []
    assert alerts.evaluate_monitors(T0 + 601) == ["timeout:nightly"]
    assert alerts.evaluate_monitors(T0 + 602) == []
    closed = stored.checkin(engine, "nightly", "error", now=T0 + 700, checkin_id=opened["checkin_id"])
    assert closed["duration"] == 700.0  # the timed-out run ends: already notified, no second alert
    failed = stored.checkin(engine, "nightly", "error", now=T0 + 800, duration=12.5)
    assert failed["duration"] == 12.5
    assert alerts.evaluate_monitors(T0 + 801) == ["failed:nightly"]
    assert [r[3] for r in rows(engine)] == ["Monitor nightly: a run is still going after 600s (its maximum runtime)",
                                            "Monitor nightly: a run failed after 12.5s"]


def test_a_rule_routes_or_mutes_monitor_alerts(engine: Engine) -> None:
    """A monitor rule replaces the default one: it may route one monitor elsewhere, and a disabled one mutes."""
    channels = [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/a"},
                {"name": "night", "type": "webhook", "url": "http://127.0.0.1:9/b"}]
    rules = [{"name": "nightly-to-night", "kind": "monitor", "channels": ["night"], "tags": {"monitor": "nightly"}}]
    alerts = AlertEngine(parse_alerting({"channels": channels, "rules": rules}), engine)
    for name in ("nightly", "other"):
        stored.checkin(engine, name, "error", now=T0, spec=MonitorSpec.make(name, "1h"))
    assert sorted(alerts.evaluate_monitors(T0 + 1)) == ["failed:nightly", "failed:other"]
    assert [(r[1], r[2]) for r in rows(engine)] == [("night", "nightly-to-night")]
    muted = AlertEngine(parse_alerting({"channels": channels, "rules": [{**rules[0], "enabled": False}]}), engine)
    stored.checkin(engine, "nightly", "error", now=T0 + 5)
    assert muted.evaluate_monitors(T0 + 6) == ["failed:nightly"] and len(rows(engine)) == 1


def test_checkin_errors(engine: Engine) -> None:
    """A check-in for a monitor defined nowhere, or with a bad status, says so."""
    with pytest.raises(stored.UnknownMonitor, match="no monitor named 'ghost'"):
        stored.checkin(engine, "ghost", "ok", now=T0)
    with pytest.raises(ValueError, match="status 'done'"):
        stored.checkin(engine, "nightly", "done", now=T0, spec=SPEC)
