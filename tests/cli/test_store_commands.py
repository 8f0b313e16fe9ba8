"""`kansoku errors|stats|alerts|db|worker` over a real SQLite store filled through kansoku's API."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kansoku
from kansoku.testing import isolated_runtime

Kansoku = Callable[..., Any]  # the `kansoku` fixture of conftest.py
ALERTS = {"channels": [{"name": "log", "type": "log"}],
          "rules": [{"name": "any_error", "error_count_threshold": 1, "suppression_minutes": 60}],
          "group_wait_seconds": 0}


def fail_payment(amount: int) -> None:
    """Raise the demo's over-limit error (one group whatever the amount)."""
    raise ValueError(f"Payment amount {amount} exceeds limit")


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Made once: a store with two groups, three over-limit payments and one database error, and
    a pending notification (the app ran without a dispatcher); (directory, event ids)."""
    directory = tmp_path_factory.mktemp("store")
    event_ids = {}
    with isolated_runtime(directory, service_name="cli-test", alert_dispatcher=False, alerts=ALERTS):
        for amount in (10_001, 20_000, 30_000):
            try:
                fail_payment(amount)
            except ValueError as exc:
                event_ids["payment"] = kansoku.capture_exception(exc, category="business_logic")
        try:
            raise ConnectionError("database connection refused")
        except ConnectionError as exc:
            event_ids["database"] = kansoku.capture_exception(exc, category="database", severity="high")
    return directory, event_ids


@pytest.fixture
def store(filled_store: tuple[Path, dict[str, str]], tmp_path: Path) -> dict[str, str]:
    """A copy of the filled store as tmp_path/kansoku.db (the store the CLI fixtures use)."""
    directory, event_ids = filled_store
    for path in directory.glob("kansoku.db*"):
        shutil.copy(path, tmp_path / path.name)
    return event_ids


def groups(kansoku: Kansoku, *args: str) -> list[dict[str, Any]]:
    """`kansoku errors list --json ARGS` items."""
    result = kansoku("errors", "list", "--json", *args)
    assert result.code == 0, result.stderr
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def test_errors_list_shows_groups_as_table_and_json(kansoku: Kansoku, store: dict[str, str]) -> None:
    """Two groups, newest first; the table has ids, counts and titles; --json has the same."""
    result = kansoku("errors", "list")
    assert result.code == 0, result.stderr
    assert "Payment amount" in result.stdout and "ConnectionError" in result.stdout
    assert "1-2 of 2 group(s)" in result.stdout
    items = groups(kansoku)
    assert [g["count"] for g in items] == [1, 3]
    assert {g["category"] for g in items} == {"business_logic", "database"}


def test_errors_list_filters(invoke: Kansoku, store: dict[str, str]) -> None:
    """--category and --search narrow the list; an unknown severity is a usage error naming the values."""
    assert [g["category"] for g in groups(invoke, "--category", "database")] == ["database"]
    assert len(groups(invoke, "--search", "exceeds limit")) == 1
    bad = invoke("errors", "list", "--severity", "apocalyptic")
    assert bad.code == 2
    assert "apocalyptic" in bad.stderr and "critical" in bad.stderr


def test_errors_show_by_group_id_and_by_event_id(invoke: Kansoku, store: dict[str, str]) -> None:
    """`show` takes a group id or an event id and prints the exception and its frames."""
    payment = next(g for g in groups(invoke) if g["category"] == "business_logic")
    by_group = invoke("errors", "show", str(payment["id"]))
    assert by_group.code == 0, by_group.stderr
    assert "ValueError: Payment amount" in by_group.stdout
    assert "in fail_payment" in by_group.stdout
    by_event = invoke("errors", "show", store["payment"], "--json")
    assert by_event.code == 0, by_event.stderr
    data = json.loads(by_event.stdout)
    assert data["id"] == payment["id"] and data["count"] == 3
    assert data["events"][0]["event_id"] == store["payment"]


def test_errors_show_unknown_id_exits_5(invoke: Kansoku, store: dict[str, str]) -> None:
    """An id that matches nothing: exit 5 and where to find the ids."""
    result = invoke("errors", "show", "999999")
    assert result.code == 5
    assert "kansoku errors list" in result.stderr


def test_resolve_ignore_reopen_change_the_status(invoke: Kansoku, store: dict[str, str]) -> None:
    """resolve moves a group out of the default list; reopen brings it back; ignore hides it."""
    payment = next(g for g in groups(invoke) if g["category"] == "business_logic")
    ident = str(payment["id"])
    resolved = invoke("errors", "resolve", ident, "--release", "1.2.3")
    assert resolved.code == 0, resolved.stderr
    assert "resolved" in resolved.stdout
    assert [g["id"] for g in groups(invoke)] != [payment["id"]] and len(groups(invoke)) == 1
    assert groups(invoke, "--status", "resolved")[0]["resolved_in_release"] == "1.2.3"
    assert invoke("errors", "reopen", ident).code == 0
    assert len(groups(invoke)) == 2
    assert invoke("errors", "ignore", ident).code == 0
    assert groups(invoke, "--status", "ignored")[0]["id"] == payment["id"]
    assert invoke("errors", "resolve", "424242").code == 5


def test_stats_counts_events_by_category_and_severity(invoke: Kansoku, store: dict[str, str]) -> None:
    """`stats` totals 4 events in 2 groups, broken down; --json is the chapter's statistics shape."""
    text = invoke("stats")
    assert text.code == 0, text.stderr
    assert "4 event(s) in 2 group(s)" in text.stdout
    data = json.loads(invoke("stats", "--json", "--hours", "1").stdout)
    assert data["total_errors"] == 4 and data["unique_errors"] == 2
    assert data["category_breakdown"] == {"business_logic": 3, "database": 1}
    assert data["most_frequent_errors"][0]["count"] == 3


def test_alerts_list_shows_rules_channels_and_deliveries(invoke: Kansoku, store: dict[str, str]) -> None:
    """Rules and channels come from the configuration; deliveries from the store's outbox."""
    result = invoke("alerts", "list", "--json", env={"KANSOKU_ALERTS": json.dumps(ALERTS)})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["rules"]] == ["any_error"]
    assert data["channels"] == [{"name": "log", "type": "log"}]
    assert {d["rule"] for d in data["deliveries"]} == {"any_error"}
    table = invoke("alerts", "list", env={"KANSOKU_ALERTS": json.dumps(ALERTS)})
    assert "any_error" in table.stdout and "active silences: none" in table.stdout


def test_worker_once_delivers_the_pending_notifications(invoke: Kansoku, store: dict[str, str],
                                                        tmp_path: Path) -> None:
    """`kansoku worker --once` sends what the apps queued (they ran without a dispatcher)."""
    def statuses() -> list[str]:
        with sqlite3.connect(tmp_path / "kansoku.db") as db:
            return [row[0] for row in db.execute("SELECT status FROM kansoku_outbox")]

    assert statuses() and set(statuses()) == {"pending"}
    result = invoke("worker", "--once", env={"KANSOKU_ALERTS": json.dumps(ALERTS)})
    assert result.code == 0, result.stderr
    assert "notification(s) processed" in result.stdout
    assert set(statuses()) == {"sent"}
    assert '"any_error"' in result.stdout or "any_error" in result.stdout  # the log channel's line


def test_alerts_test_log_channel_succeeds(kansoku: Kansoku) -> None:
    """`alerts test log` delivers through the default log channel (a log line): exit 0."""
    result = kansoku("alerts", "test", "log")
    assert result.code == 0, result.stderr
    assert "log: test notification delivered" in result.stdout
    assert '"logger":"kansoku.alerts"' in result.stdout


def test_alerts_test_failures_exit_1_and_unknown_channel_5(invoke: Kansoku, port: int) -> None:
    """A webhook nobody listens on: exit 1 with the reason; an unknown channel: exit 5."""
    alerts = {"channels": [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/x",
                            "timeout": 2, "max_attempts": 1}]}
    failed = invoke("alerts", "test", "hook", env={"KANSOKU_ALERTS": json.dumps(alerts)})
    assert failed.code == 1
    assert "hook: delivery failed" in failed.stderr
    unknown = invoke("alerts", "test", "pager")
    assert unknown.code == 5
    assert "configured: log" in unknown.stderr


def test_silence_and_unsilence(invoke: Kansoku, store: dict[str, str]) -> None:
    """A silence is stored with its matchers, listed, and ended early; mistakes exit 2 or 5."""
    made = invoke("alerts", "silence", "--rule", "critical_errors", "--for", "2h", "--comment", "maintenance",
                   "--json")
    assert made.code == 0, made.stderr
    silence = json.loads(made.stdout)
    assert silence["rule"] == "critical_errors" and silence["comment"] == "maintenance"
    assert json.loads(invoke("alerts", "list", "--json").stdout)["silences"][0]["id"] == silence["id"]
    assert invoke("alerts", "unsilence", str(silence["id"])).code == 0
    assert invoke("alerts", "unsilence", str(silence["id"])).code == 5
    assert invoke("alerts", "silence", "--for", "2h").code == 2  # no matcher
    assert invoke("alerts", "silence", "--rule", "critical_errors", "--for", "soon").code == 2
    assert invoke("alerts", "silence", "--rule", "no_such_rule").code == 5
    group = invoke("alerts", "silence", "--group", store["database"], "--json")
    assert group.code == 0, group.stderr
    assert json.loads(group.stdout)["group_key"]


def test_db_upgrade_status_downgrade(kansoku: Kansoku, invoke: Kansoku, tmp_path: Path) -> None:
    """A new store is behind (exit 4); upgrade brings it to head; downgrade base empties it."""
    env = {"KANSOKU_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    behind = kansoku("db", "status", "--json", env=env)
    assert behind.code == 4
    assert json.loads(behind.stdout)["current"] is None
    up = kansoku("db", "upgrade", env=env)
    assert up.code == 0, up.stderr
    status = json.loads(invoke("db", "status", "--json", env=env).stdout)
    assert status["up_to_date"] is True and status["current"] == status["head"]
    assert invoke("db", "downgrade", "nonsense", env=env).code == 5
    down = invoke("db", "downgrade", "base", env=env)
    assert down.code == 0, down.stderr
    assert json.loads(invoke("db", "status", "--json", env=env).stdout)["current"] is None


def test_unreachable_store_exits_4_with_the_fix(kansoku: Kansoku, invoke: Kansoku, port: int) -> None:
    """A PostgreSQL URL nobody answers: exit 4, the URL without its password, and what to check."""
    env = {"KANSOKU_DATABASE_URL": f"postgresql+psycopg://kansoku:pw-123@127.0.0.1:{port}/kansoku"}
    for run, args in ((kansoku, ("errors", "list")), (invoke, ("stats",)), (invoke, ("db", "status"))):
        result = run(*args, env=env)
        assert result.code == 4, (args, result.stderr)
        assert "cannot use the store" in result.stderr
        assert "pw-123" not in result.stderr
        assert "KANSOKU_DATABASE_URL" in result.stderr


@pytest.mark.parametrize("args", [
    ("errors", "list"), ("errors", "show", "1"), ("stats",), ("alerts", "list"), ("alerts", "test", "log"),
    ("db", "status"), ("db", "upgrade"), ("worker", "--once"), ("demo",), ("dashboard",),
])
def test_every_command_refuses_an_invalid_configuration(invoke: Kansoku, args: tuple[str, ...]) -> None:
    """A bad KANSOKU_* value: exit 3 naming the variable, from every command that reads settings."""
    result = invoke(*args, env={"KANSOKU_RETENTION_DAYS": "-1"})
    assert result.code == 3, result.stderr
    assert "KANSOKU_RETENTION_DAYS" in result.stderr


@pytest.mark.slow
def test_dashboard_serves_the_api_over_the_store(serve: Callable[..., Any], store: dict[str, str],
                                                 port: int) -> None:
    """`kansoku dashboard` shows the stored groups to loopback clients; with a token, only with it."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    served = serve("dashboard", "--port", str(port), env={"KANSOKU_DASHBOARD_TOKEN": "s3cret-token"})
    assert served.wait_http(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/ready").json()["status"] == "ok"
    assert httpx.get(f"{base}/").headers["location"] == "/kansoku/"
    assert httpx.get(f"{base}/kansoku/api/errors").status_code == 401
    listed = httpx.get(f"{base}/kansoku/api/errors", headers={"Authorization": "Bearer s3cret-token"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 2
    page = httpx.get(f"{base}/kansoku/", headers={"Authorization": "Bearer s3cret-token"})
    assert page.status_code == 200 and "Payment amount" in page.text
    assert served.interrupt() == 0


@pytest.mark.slow
def test_worker_runs_until_interrupted(serve: Callable[..., Any], store: dict[str, str], tmp_path: Path) -> None:
    """`kansoku worker` delivers as notifications become due and stops cleanly (exit 0) on Ctrl-C."""
    import time

    served = serve("worker", env={"KANSOKU_ALERTS": json.dumps(ALERTS)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sqlite3.connect(tmp_path / "kansoku.db") as db:
            if {row[0] for row in db.execute("SELECT status FROM kansoku_outbox")} == {"sent"}:
                break
        time.sleep(0.2)
    else:
        pytest.fail(f"nothing delivered:\n{served.stderr}")
    assert served.interrupt() == 0
    assert "kansoku worker stopped" in served.stdout
    assert "internal error" not in served.stderr
