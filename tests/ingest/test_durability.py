"""`kansoku server` as a process: SIGTERM during an ingest burst loses no acknowledged event."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.store.projects import create_project
from kansoku.store.tables import error_events

from .conftest import wait_for

pytestmark = pytest.mark.slow
KANSOKU = Path(sys.executable).with_name("kansoku")
TOTAL = 5000


def test_sigterm_during_a_burst_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    """5,000 events sent by 8 clients, SIGTERM midway: every event answered 2xx is in the store."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "burst")
    store.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_"))}
    env.update(KANSOKU_DATABASE_URL=url, KANSOKU_MAX_EVENTS_PER_GROUP="100000", KANSOKU_LOG_LEVEL="WARNING")
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen([str(KANSOKU), "server", "--port", str(port)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    endpoint = f"{base}/api/{project.id}/envelope/?sentry_key={project.key}"
    try:
        wait_for(lambda: _answers(base, proc, tmp_path), timeout=30, what="the server")
        acknowledged: list[str] = []
        lock = threading.Lock()
        ids = iter([uuid.uuid4().hex for _ in range(TOTAL)])

        def client() -> None:
            with httpx.Client(timeout=10) as http:
                for event_id in ids:  # each id taken by exactly one thread (next() holds the GIL)
                    try:
                        answer = http.post(endpoint, content=_envelope(event_id))
                    except httpx.HTTPError:
                        return  # the server stopped taking connections
                    if answer.is_success:
                        with lock:
                            acknowledged.append(event_id)
                    elif answer.status_code >= 500 and answer.status_code != 503:
                        raise AssertionError(f"{answer.status_code}: {answer.text}")

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 1000, timeout=60, what="1000 acknowledged events")
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status is SIGTERM's.
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = set(conn.execute(select(error_events.c.event_id)).scalars())
    engine.dispose()
    assert 1000 <= len(acknowledged) < TOTAL  # the SIGTERM did land mid-burst
    assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged events lost"
    print(f"acknowledged {len(acknowledged)} of {TOTAL} before the SIGTERM took effect; stored {len(stored)}")


def _answers(base: str, proc: subprocess.Popen[bytes], tmp_path: Path) -> bool:
    assert proc.poll() is None, (tmp_path / "server.log").read_text()
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _envelope(event_id: str) -> bytes:
    event = json.dumps({"event_id": event_id, "exception": {"values": [
        {"type": "ValueError", "value": "burst", "stacktrace": {"frames": [
            {"module": "app.orders", "function": "create", "in_app": True, "lineno": 10}]}}]}}).encode()
    return b"{}\n" + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event
