"""Sentry Crons: the real sentry-sdk's check-ins to a `kansoku server` process become monitor check-ins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.crons import capture_checkin, monitor

from kansoku.ingest.body import IngestError
from kansoku.ingest.checkins import checkin_from_sentry
from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.store import monitors as stored
from kansoku.store.projects import create_project, sender_config

from ..conftest import Hooks
from .conftest import ServerProcess, wait_for

# Sentry's units include seconds ("not supported in Sentry"): kansoku keeps them, so a run is missed
# within seconds here. checkin_margin 0 minutes is read as kansoku's smallest margin, one second.
CONFIG: Any = {"schedule": {"type": "interval", "value": 6, "unit": "second"}, "checkin_margin": 0,
               "max_runtime": 10, "timezone": "Europe/Berlin"}


@pytest.fixture
def server(tmp_path: Path, hooks: Hooks) -> Iterator[tuple[ServerProcess, str, Store]]:
    """A `kansoku server` process alerting to a webhook every 0.2 s, its project's DSN, and its store."""
    config = tmp_path / "kansoku.toml"
    config.write_text(f"""
[alerts]
poll_seconds = 0.2
group_wait_seconds = 0

[[alerts.channels]]
name = "ops"
type = "webhook"
url = "{hooks.url}"
""")
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "jobs")
    process = ServerProcess(url, tmp_path, KANSOKU_CONFIG=str(config))
    try:
        process.wait_ready()
        yield process, sender_config(project, process.url)["dsn"], store
    finally:
        process.stop()
        store.close()


@monitor(monitor_slug="import-orders", monitor_config=CONFIG)
def import_orders(fail: bool) -> None:
    """A scheduled job, monitored by sentry-sdk's decorator."""
    if fail:
        raise RuntimeError("orders API down")


def alerted(hooks: Hooks) -> list[tuple[str, str, str]]:
    """(kind, monitor, problem) of every alert the webhook got, in order."""
    return [(body["kind"], item["tags"]["monitor"], item["tags"].get("problem", ""))
            for body in hooks.bodies for item in body["alerts"]]


@pytest.mark.slow
def test_sentry_sdk_checkins_create_monitors_and_alert_like_native_ones(
        server: tuple[ServerProcess, str, Store], hooks: Hooks) -> None:
    """sentry-sdk's @monitor and capture_checkin create monitors from monitor_config (upsert) and record
    in_progress/ok and in_progress/error runs; the failed run alerts, a missed schedule alerts, the next
    good check-in recovers."""
    _, dsn, store = server
    sentry_sdk.init(dsn=dsn, default_integrations=False, auto_enabling_integrations=False)
    try:
        capture_checkin(monitor_slug="sync-stock", status="ok", monitor_config=CONFIG)
        import_orders(fail=False)
        sentry_sdk.flush(5)
        found = wait_for(lambda: (m := stored.get_monitor(store.engine, "import-orders")) and
                         [c["status"] for c in m["checkins"]] == ["ok"] and m, what="the ok run")
        assert (found["schedule_kind"], float(found["schedule"]), found["timezone"], found["margin_seconds"],
                found["max_runtime_seconds"]) == ("interval", 6.0, "Europe/Berlin", 1.0, 600.0)
        assert found["checkins"][0]["source"] == "sentry" and found["checkins"][0]["duration"] is not None
        with pytest.raises(RuntimeError):
            import_orders(fail=True)
        sentry_sdk.flush(5)
        wait_for(lambda: ("trigger", "import-orders", "failed") in alerted(hooks), timeout=30,
                 what="the failed run's alert")
        # sync-stock checks in no more: its schedule is missed and alerts; then a good run recovers it.
        wait_for(lambda: ("trigger", "sync-stock", "missed") in alerted(hooks), timeout=30, what="the missed run")
        capture_checkin(monitor_slug="sync-stock", status="ok", duration=1.5)
        sentry_sdk.flush(5)
        wait_for(lambda: [a for a in alerted(hooks) if a[:2] == ("resolve", "sync-stock")], timeout=30,
                 what="the recovery")
        runs = stored.get_monitor(store.engine, "sync-stock")["checkins"]  # type: ignore[index]
        assert [c["source"] for c in runs if c["status"] == "ok" and c["duration"] == 1.5] == ["sentry"]
        assert {c["status"] for c in runs} == {"ok", "missed"}
        errors = stored.get_monitor(store.engine, "import-orders")["checkins"]  # type: ignore[index]
        assert [c["status"] for c in errors if c["source"] == "sentry"].count("error") == 1
    finally:
        sentry_sdk.get_client().close(timeout=5)
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)


def test_checkins_of_unknown_monitors_are_counted_and_bad_ones_are_400(server: tuple[ServerProcess, str, Store]
                                                                       ) -> None:
    """A check-in of a monitor defined nowhere is accepted and dropped; a bad status or schedule is 400 with why."""
    process, dsn, store = server
    key, project_id = dsn.split("//")[1].split("@")[0], dsn.rsplit("/", 1)[1]

    def send(payload: dict[str, Any]) -> httpx.Response:
        item = json.dumps(payload).encode()
        body = b"{}\n" + json.dumps({"type": "check_in", "length": len(item)}).encode() + b"\n" + item
        return httpx.post(f"{process.url}/api/{project_id}/envelope/", content=body, params={"sentry_key": key})

    assert send({"monitor_slug": "nowhere", "status": "ok"}).status_code == 200
    assert stored.get_monitor(store.engine, "nowhere") is None
    bad = send({"monitor_slug": "nightly", "status": "finished"})
    assert bad.status_code == 400 and "status" in bad.json()["detail"]
    bad = send({"monitor_slug": "nightly", "status": "ok",
                "monitor_config": {"schedule": {"type": "crontab", "value": "every day"}}})
    assert bad.status_code == 400 and "schedule" in bad.json()["detail"]
    made = send({"monitor_slug": "nightly", "status": "in_progress", "check_in_id": str(uuid.uuid4()),
                 "monitor_config": {"schedule": {"type": "crontab", "value": "0 3 * * *"}}})
    assert made.status_code == 200
    nightly = stored.get_monitor(store.engine, "nightly")
    assert nightly is not None and [c["status"] for c in nightly["checkins"]] == ["in_progress"]


def test_check_in_payloads() -> None:
    """Intervals in Sentry's units become seconds, margins minutes; ids lose their dashes; bad fields are 400."""
    made = checkin_from_sentry({"monitor_slug": "sync", "status": "error", "duration": 2,
                                "check_in_id": "0123456789ABCDEF-0123456789abcdef",
                                "monitor_config": {"schedule": {"type": "interval", "value": 2, "unit": "hour"},
                                                   "checkin_margin": 5, "max_runtime": 30}})
    assert made.checkin_id == "0123456789abcdef0123456789abcdef" and made.duration == 2.0 and made.spec is not None
    assert (made.spec.schedule_kind, float(made.spec.schedule), made.spec.margin, made.spec.max_runtime) == (
        "interval", 7200.0, 300.0, 1800.0)
    for payload in ({"status": "ok"}, {"monitor_slug": "x", "status": "ok", "duration": -1},
                    {"monitor_slug": "x", "status": "ok", "check_in_id": "nope"},
                    {"monitor_slug": "x", "status": "ok", "monitor_config": {"schedule": {"type": "interval",
                                                                                          "value": 1, "unit": "eon"}}}):
        with pytest.raises(IngestError) as caught:
            checkin_from_sentry(payload)
        assert caught.value.status == 400
