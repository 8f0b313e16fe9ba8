"""Shell jobs check in with the CLI and with curl; two `kansoku worker` processes alert a missed run once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kansoku import runtime
from kansoku.store import create_store_engine
from kansoku.store import monitors as stored
from kansoku.testing import isolated_runtime

from ..conftest import Hooks

KANSOKU = [str(Path(sys.executable).parent / "kansoku")]  # the console script, as a shell job runs it


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KANSOKU, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_cli_and_curl_check_ins_and_a_wrong_token(tmp_path: Path, serve_app: Any) -> None:
    """A shell job checks in with `kansoku monitors checkin` and with curl; a wrong token is refused (401)."""
    url = f"sqlite:///{tmp_path / 'kansoku.db'}"
    env = {**os.environ, "KANSOKU_DATABASE_URL": url}
    started = cli(env, "monitors", "checkin", "backup", "--status", "in_progress", "--schedule", "0 2 * * *",
                  "--timezone", "Europe/Berlin")
    assert started.returncode == 0, started.stderr
    checkin_id = started.stdout.strip()
    done = cli(env, "monitors", "checkin", "backup", "--status", "ok", "--checkin-id", checkin_id)
    assert done.returncode == 0, done.stderr
    unknown = cli(env, "monitors", "checkin", "ghost", "--status", "ok")
    assert unknown.returncode == 5 and "no monitor named 'ghost'" in unknown.stderr
    bad = cli(env, "monitors", "checkin", "backup", "--status", "ok", "--schedule", "0 3 * *")
    assert bad.returncode == 2 and "not a valid crontab" in bad.stderr

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with isolated_runtime(tmp_path / "web", database_url=url, monitor_token="m0nitor", dashboard_token="dash"), \
            serve_app(runtime.instrument(app)) as base:
            def curl(token: str, query: str) -> tuple[int, dict[str, Any]]:
                out = subprocess.run(
                    ["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}",
                     f"{base}/kansoku/api/checkins/backup?{query}"], capture_output=True, text=True, timeout=60,
                    check=True).stdout.rsplit("\n", 1)
                return int(out[1]), json.loads(out[0])

            assert curl("wrong", "status=ok")[0] == 401
            status, body = curl("m0nitor", "status=error&duration=3.5")
            assert (status, body["status"], body["duration"], body["monitor"]) == (201, "error", 3.5, "backup")
            assert curl("m0nitor", "status=finished")[0] == 400
            assert curl("m0nitor", "status=ok&duration=-1")[0] == 400
            assert curl("dash", "status=ok")[0] == 201  # the dashboard token works too
    shown = cli(env, "monitors", "show", "backup", "--json")
    assert shown.returncode == 0, shown.stderr
    runs = json.loads(shown.stdout)["checkins"]
    # newest start first; the error's start is 3.5 s before its check-in, so the order is not asserted
    assert sorted((r["status"], r["source"]) for r in runs) == [("error", "http"), ("ok", "cli"), ("ok", "http")]
    listed = cli(env, "monitors", "list")
    assert "backup" in listed.stdout and "0 2 * * * (Europe/Berlin)" in listed.stdout


@pytest.mark.slow
def test_two_workers_send_one_missed_alert_and_one_recovery(tmp_path: Path, hooks: Hooks,
                                                           poll: Callable[..., Any]) -> None:
    """A monitor that misses its run is notified once with two `kansoku worker` evaluating; the next ok recovers."""
    config = tmp_path / "kansoku.toml"
    config.write_text(f"""
[alerts]
poll_seconds = 0.2
group_wait_seconds = 0

[[alerts.channels]]
name = "ops"
type = "webhook"
url = "{hooks.url}"

[[monitors]]
name = "every-ten"
schedule = "10s"
margin = "1s"
""")
    url = f"sqlite:///{tmp_path / 'kansoku.db'}"
    env = {**os.environ, "KANSOKU_DATABASE_URL": url, "KANSOKU_CONFIG": str(config), "KANSOKU_LOG_FORMAT": "json"}
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "monitors", "checkin", "every-ten", "--status", "ok").returncode == 0
    workers = [subprocess.Popen([*KANSOKU, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        poll(lambda: hooks.kinds() == ["trigger"], timeout=40)
        assert cli(env, "monitors", "checkin", "every-ten", "--status", "ok").returncode == 0
        poll(lambda: hooks.kinds() == ["trigger", "resolve"], timeout=20)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    assert hooks.kinds() == ["trigger", "resolve"]
    assert hooks.bodies[0]["status"] == "firing" and hooks.bodies[1]["status"] == "resolved"
    engine = create_store_engine(url)
    found = stored.get_monitor(engine, "every-ten")
    engine.dispose()
    assert found is not None
    assert [c["status"] for c in found["checkins"]][-3:] == ["ok", "missed", "ok"]
