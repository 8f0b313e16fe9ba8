"""Storm: 10,000 identical errors through two worker processes sharing one SQLite store.

Each channel gets exactly one notification in the suppression window; the first one after it
carries the count of everything suppressed in between (9,999).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.store.tables import alert_state, outbox

pytestmark = pytest.mark.slow

WORKER = '''
import json, os, sys, time
from kansoku import _safety
from kansoku.alerts import AlertEngine, parse_alerting
from kansoku.store import create_store_engine

_safety.set_strict(True)
url, raw, start, go, count = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), sys.argv[4], \
    int(sys.argv[5])
now = [start]
engine = AlertEngine(parse_alerting(raw), create_store_engine(url), clock=lambda: now[0])
event = {"event_id": "e", "exception_type": "ValueError", "message": "amount over limit", "group_key": "g1",
         "severity": "critical", "category": "application", "service": "shop", "environment": "test",
         "tags": {}}
change = {"group_key": "g1", "group_id": 7, "new": False, "regression": False, "count": 1,
          "status": "unresolved"}
while not os.path.exists(go):  # both workers start together
    time.sleep(0.001)
for _ in range(count):
    engine.on_error(event, change)
    now[0] += 0.005  # 5,000 events span 25 s of the injected clock: several flushes and re-checks
engine.close()
print("done", os.getpid())
'''


def _config(url: str) -> dict[str, Any]:
    return {
        "channels": [{"name": "hook", "type": "webhook", "url": url}, {"name": "log", "type": "log"}],
        "rules": [{"name": "crit", "severity_threshold": "critical", "suppression_minutes": 10}],
        "group_wait_seconds": 0,
    }


def test_two_processes_one_notification_per_window(kit: Any, tmp_path: Path, store: Engine, clock: Any,
                                                   receiver: Any) -> None:
    """10,000 errors in two processes: one notification per channel, then one with the suppressed count."""
    raw = _config(receiver.url + "/hook")
    url = str(store.url)
    go = tmp_path / "go"
    command = [sys.executable, "-c", WORKER, url, json.dumps(raw), str(kit.T0), str(go), "5000"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    time.sleep(0.5)  # let both import and wait at the line
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    with store.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(outbox.c.channel, outbox.c.kind))] == [
            ("hook", "trigger"), ("log", "trigger")]
        assert conn.execute(select(alert_state.c.suppressed)).scalar_one() == 9_999

    config = parse_alerting(raw)
    dispatcher = Dispatcher(config, store, clock=clock)
    assert dispatcher.run_once() == 2
    assert [r.json()["alerts"][0]["suppressed"] for r in receiver.requests] == [0]

    clock.now = kit.T0 + 601 + 50  # the window (from the first notification) is over
    AlertEngine(config, store, clock=clock).on_error(kit.event(), kit.change())
    assert dispatcher.run_once() == 2
    second = receiver.requests[1].json()
    assert (second["suppressed"], second["alerts"][0]["suppressed"]) == (9_999, 9_999)
    assert "9999 suppressed since the last notification" in second["summary"]
    assert len(receiver.requests) == 2


@pytest.mark.postgres
def test_threads_as_processes_on_postgres(kit: Any, pg_store: Engine, clock: Any) -> None:
    """Eight engines (as eight processes would) racing on PostgreSQL write one notification per channel."""
    import threading

    config = parse_alerting(_config("http://127.0.0.1:9/hook"))
    engines = [AlertEngine(config, pg_store, clock=clock) for _ in range(8)]
    start = threading.Barrier(len(engines))

    def work(engine: AlertEngine) -> None:
        start.wait()
        for _ in range(250):
            engine.on_error(kit.event(), kit.change())
        engine.close()

    threads = [threading.Thread(target=work, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pg_store.connect() as conn:
        assert sorted(conn.execute(select(outbox.c.channel)).scalars()) == ["hook", "log"]
        assert conn.execute(select(alert_state.c.suppressed)).scalar_one() == 8 * 250 - 1
