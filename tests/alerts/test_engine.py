"""The engine: thresholds in windows, suppression with counts, filters, rule kinds, silences, resolution."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from kansoku.alerts import AlertEngine, parse_alerting
from kansoku.alerts.rules import AlertingConfig, SiteInfo
from kansoku.alerts.silences import create_silence, expire_silence
from kansoku.store.tables import alert_state, error_groups, outbox, request_stats

SITE = SiteInfo(service="shop", environment="test", dashboard_url="https://obs.example.com")


def config(
    rules: list[dict[str, Any]], channels: list[dict[str, Any]] | None = None, **extra: Any
) -> AlertingConfig:
    raw: dict[str, Any] = {"rules": rules, "group_wait_seconds": 0, **extra}
    if channels is not None:
        raw["channels"] = channels
    return parse_alerting(raw, site=SITE)


def rows(store: Engine) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.id))]


def ids() -> Any:
    counter = iter(range(1, 10_000))
    return lambda: f"id{next(counter)}"


def test_threshold_within_window(kit: Any, store: Engine, clock: Any) -> None:
    """N events of one group inside the window fire; the same N spread wider do not."""
    engine = AlertEngine(config([{"name": "r", "error_count_threshold": 3, "time_window_minutes": 5}]), store,
                         clock=clock)
    for _ in range(2):
        engine.on_error(kit.event(), kit.change())
        clock.advance(240)
    engine.on_error(kit.event(), kit.change())  # 3 events over 8 minutes: 2 inside any 5-minute window
    assert rows(store) == []
    engine.on_error(kit.event(), kit.change())
    assert len(rows(store)) == 1


def test_suppression_then_the_suppressed_count(kit: Any, store: Engine, clock: Any) -> None:
    """Inside the suppression window nothing is sent; the next notification says how many were held back."""
    engine = AlertEngine(config([{"name": "r", "suppression_minutes": 10}]), store, clock=clock, new_id=ids())
    for _ in range(5):
        engine.on_error(kit.event(), kit.change(count=9))
    assert len(rows(store)) == 1
    clock.advance(601)
    engine.on_error(kit.event(), kit.change(count=10))
    second = rows(store)[1]
    assert second["payload"] == {
        "rule": {"name": "r", "description": "", "kind": "errors", "window_minutes": 5},
        "recipients": [],
        "item": {
            "group_key": "g1", "group_id": 7, "title": "ValueError: amount over limit",
            "exception_type": "ValueError", "message": "amount over limit", "culprit": "shop.orders.create",
            "severity": "critical", "category": "application", "count": 10, "window_count": 1,
            "suppressed": 4, "url": "https://obs.example.com/kansoku/errors/7", "service": "shop",
            "environment": "test", "release": "1.0", "event_id": "ev-g1", "tags": {},
            "starts_at": kit.T0 + 601, "status": "firing",
        },
    }
    assert (second["channel"], second["kind"], second["idempotency_key"], second["status"]) == (
        "log", "trigger", "id2", "pending")


@pytest.mark.parametrize(("rule", "event", "fires"), [
    ({"severity_threshold": "high"}, {"severity": "medium"}, False),
    ({"severity_threshold": "high"}, {"severity": "emergency"}, True),
    ({"categories": ["security"]}, {"category": "database"}, False),
    ({"categories": ["security", "database"]}, {"category": "database"}, True),
    ({"services": ["billing"]}, {}, False),
    ({"environments": ["production"]}, {}, False),
    ({"environments": ["test"]}, {}, True),
    ({"tags": {"tenant": "acme"}}, {"tags": {"tenant": "other"}}, False),
    ({"tags": {"tenant": "acme"}}, {"tags": {"tenant": "acme", "x": "y"}}, True),
])
def test_filters(kit: Any, store: Engine, clock: Any, rule: dict[str, Any], event: dict[str, Any],
                 fires: bool) -> None:
    """Severity threshold, category filter, service, environment and tag filters."""
    engine = AlertEngine(config([{"name": "r", **rule}]), store, clock=clock)
    engine.on_error(kit.event(**event), kit.change())
    assert len(rows(store)) == (1 if fires else 0)


def test_first_seen_and_regression_rules(kit: Any, store: Engine, clock: Any) -> None:
    """first_seen fires on a new group only; regression on a reopened group only."""
    rules = [{"name": "new", "kind": "first_seen"}, {"name": "back", "kind": "regression"}]
    engine = AlertEngine(config(rules), store, clock=clock)
    engine.on_error(kit.event("a"), kit.change("a", new=True))
    engine.on_error(kit.event("a"), kit.change("a"))
    engine.on_error(kit.event("b"), kit.change("b", regression=True))
    assert [(r["rule"], r["group_key"]) for r in rows(store)] == [("new", "a"), ("back", "b")]


def test_frequency_across_groups(kit: Any, store: Engine, clock: Any) -> None:
    """A frequency rule counts events of every group together and notifies once per window."""
    engine = AlertEngine(config([{"name": "burst", "kind": "frequency", "error_count_threshold": 3}]), store,
                         clock=clock)
    for group in ("a", "b", "c", "d"):
        engine.on_error(kit.event(group), kit.change(group))
    [row] = rows(store)
    assert (row["group_key"], row["payload"]["item"]["title"], row["payload"]["item"]["url"]) == (
        "", "3 errors in 5 min across groups", None)


def test_ignored_groups_never_alert(kit: Any, store: Engine, clock: Any) -> None:
    """An event of an ignored group fires nothing."""
    engine = AlertEngine(config([{"name": "r"}]), store, clock=clock)
    change = kit.change()
    change["status"] = "ignored"
    engine.on_error(kit.event(), change)
    assert rows(store) == []


@pytest.mark.parametrize("matcher", [{"rule": "r"}, {"group_key": "g1"}, {"tag": "tenant=acme"},
                                     {"tag": "tenant"}, {"text": "OVER LIMIT"}])
def test_silences(kit: Any, store: Engine, clock: Any, matcher: dict[str, str]) -> None:
    """A silence by rule, group, tag or text holds notifications back until it ends or is expired."""
    engine = AlertEngine(config([{"name": "r", "suppression_minutes": 0}]), store, clock=clock)
    silence = create_silence(store, now=clock(), ends_at=clock() + 600, **matcher)
    engine.on_error(kit.event(tags={"tenant": "acme"}), kit.change())
    assert rows(store) == []
    expire_silence(store, silence.id, clock())
    engine.silences.invalidate()
    engine.on_error(kit.event(tags={"tenant": "acme"}), kit.change())
    assert len(rows(store)) == 1


def test_silence_that_does_not_match(kit: Any, store: Engine, clock: Any) -> None:
    """A silence for another group lets the notification through."""
    engine = AlertEngine(config([{"name": "r"}]), store, clock=clock)
    create_silence(store, now=clock(), ends_at=clock() + 600, group_key="other")
    engine.on_error(kit.event(), kit.change())
    assert len(rows(store)) == 1


def test_redaction_of_notification_payload(kit: Any, store: Engine, clock: Any) -> None:
    """Secrets in the error message never reach the outbox."""
    engine = AlertEngine(config([{"name": "r"}]), store, clock=clock)
    engine.on_error(kit.event(message="card 4111 1111 1111 1111 password=hunter2 for bob@example.com"),
                    kit.change())
    item = rows(store)[0]["payload"]["item"]
    assert item["message"] == "card [REDACTED CARD] password=[REDACTED] for [REDACTED EMAIL]"
    assert "hunter2" not in item["title"]


def test_group_id_looked_up_when_missing(kit: Any, store: Engine, clock: Any) -> None:
    """Without group_id in the change, the dashboard link uses the group's row id from the store."""
    with store.begin() as conn:
        conn.execute(insert(error_groups).values(
            id=42, group_key="g1", fingerprint_parts=[], title="t", exception_type="ValueError",
            severity="high", category="application", service="shop", environment="test", first_seen=0,
            last_seen=0))
    engine = AlertEngine(config([{"name": "r"}]), store, clock=clock)
    change = kit.change()
    del change["group_id"]
    engine.on_error(kit.event(), change)
    assert rows(store)[0]["payload"]["item"]["url"] == "https://obs.example.com/kansoku/errors/42"


CHANNELS = [
    {"name": "pd", "type": "pagerduty", "routing_key": "k"},
    {"name": "mail", "type": "email", "host": "h", "from": "a@b.c", "to": ["x@y.z"]},
    {"name": "low-only", "type": "log", "min_severity": "emergency"},
]


def test_resolution_goes_where_the_channel_has_one(kit: Any, store: Engine, clock: Any) -> None:
    """on_resolve writes resolve rows for resolving channels only, once, and reopens the window."""
    engine = AlertEngine(config([{"name": "r", "suppression_minutes": 60}], CHANNELS), store, clock=clock)
    engine.on_error(kit.event(), kit.change())
    assert [(r["channel"], r["kind"]) for r in rows(store)] == [("pd", "trigger"), ("mail", "trigger")]
    assert engine.on_resolve({"group_key": "g1", "id": 7}) == 1
    assert engine.on_resolve("g1") == 0  # already resolved: nothing more
    assert [(r["channel"], r["kind"]) for r in rows(store)][2:] == [("pd", "resolve")]
    engine.on_error(kit.event(), kit.change())  # back after resolution: notifies at once
    assert len(rows(store)) == 5


def test_grouping_several_groups_share_a_due_time(kit: Any, store: Engine, clock: Any) -> None:
    """Triggers of one rule and channel written within the grouping wait become due together."""
    cfg = parse_alerting({"rules": [{"name": "r"}], "group_wait_seconds": 30}, site=SITE)
    engine = AlertEngine(cfg, store, clock=clock)
    for group in ("a", "b", "c"):
        engine.on_error(kit.event(group), kit.change(group))
        clock.advance(10)
    assert {r["next_attempt_at"] for r in rows(store)} == {kit.T0 + 30}


def _stats(store: Engine, minute: int, instance: str, requests: int, errors: int,
           buckets: dict[str, int] | None = None) -> None:
    with store.begin() as conn:
        conn.execute(insert(request_stats).values(
            minute=minute, service="shop", instance=instance, requests=requests, errors_4xx=0,
            errors_5xx=errors, duration_sum=0.0, buckets=buckets or {}))


def test_http_error_ratio_summed_across_instances(kit: Any, store: Engine, clock: Any) -> None:
    """5xx over 5% across two instances fires once; a quiet window resolves it."""
    rule = {"name": "5xx", "kind": "http_error_ratio", "threshold": 0.05, "time_window_minutes": 5,
            "severity_threshold": "high"}
    engine = AlertEngine(config([rule]), store, clock=clock)
    minute = int(clock() // 60)
    _stats(store, minute - 1, "a:1", 100, 4)  # 4% alone
    _stats(store, minute, "b:2", 100, 8)  # 6% together
    engine.tick()
    [row] = rows(store)
    assert (row["group_key"], row["payload"]["item"]["title"]) == (
        "http:shop", "5xx ratio 6.0% > 5.0% over 5 min (200 requests)")
    engine.evaluate_http(clock() + 60)  # still firing: suppressed
    assert len(rows(store)) == 1
    engine.evaluate_http(clock() + 600)  # rows left the window: resolved
    assert [r["kind"] for r in rows(store)] == ["trigger", "resolve"]


def test_http_latency_quantile(kit: Any, store: Engine, clock: Any) -> None:
    """p95 latency from cumulative buckets over the threshold fires."""
    rule = {"name": "slow", "kind": "http_latency", "threshold": 0.5, "quantile": 0.95}
    engine = AlertEngine(config([rule]), store, clock=clock)
    minute = int(clock() // 60)
    _stats(store, minute, "a:1", 100, 0, {"0.1": 50, "0.5": 90, "1.0": 100, "+Inf": 100})
    engine.evaluate_http(clock())
    [row] = rows(store)
    assert row["payload"]["item"]["title"] == "p95 latency 750 ms > 500 ms over 5 min"


def test_http_rule_quiet_below_min_requests(kit: Any, store: Engine, clock: Any) -> None:
    """A few failing requests are not a ratio."""
    engine = AlertEngine(config([{"name": "5xx", "kind": "http_error_ratio", "threshold": 0.05}]), store,
                         clock=clock)
    _stats(store, int(clock() // 60), "a:1", 5, 5)
    engine.evaluate_http(clock())
    assert rows(store) == []


def test_alertmanager_alerts_are_resent_while_firing(kit: Any, store: Engine, clock: Any) -> None:
    """A firing group is re-sent to Alertmanager every resend interval, to Alertmanager only."""
    channels = [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9", "resend_seconds": 60},
                {"name": "log", "type": "log"}]
    engine = AlertEngine(config([{"name": "r"}], channels), store, clock=clock)
    engine.on_error(kit.event(), kit.change())
    engine.tick()
    clock.advance(30)
    engine.tick()
    clock.advance(31)
    engine.tick()
    assert [(r["channel"], r["kind"]) for r in rows(store)] == [
        ("am", "trigger"), ("log", "trigger"), ("am", "trigger")]
    engine.on_resolve("g1")
    clock.advance(120)
    engine.tick()
    assert [(r["channel"], r["kind"]) for r in rows(store)][3:] == [("am", "resolve"), ("log", "resolve")]


def test_state_is_in_the_store(kit: Any, store: Engine, clock: Any) -> None:
    """A restarted engine (a new process) still knows the suppression window."""
    cfg = config([{"name": "r", "suppression_minutes": 30}])
    AlertEngine(cfg, store, clock=clock).on_error(kit.event(), kit.change())
    restarted = AlertEngine(cfg, store, clock=clock)
    restarted.on_error(kit.event(), kit.change())
    restarted.close()
    assert len(rows(store)) == 1
    with store.connect() as conn:
        assert conn.execute(select(alert_state.c.suppressed)).scalar() == 1
