"""Durability (must-show): SIGTERM in a burst of failing requests loses no event the app accepted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kansoku.store import Store
from kansoku.store.tables import error_events

from ..conftest import free_port

HERE = Path(__file__).parent


def _serve(db_url: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "KANSOKU_DATABASE_URL": db_url, "KANSOKU_SERVICE_NAME": "shop",
           "KANSOKU_MAX_EVENTS_PER_GROUP": "1000000", "FAILING_APP_SLOW_MS": "10"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "failing_app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"uvicorn did not start: {proc.communicate()}")


def _burst(port: int, ids: list[str], stop: threading.Event) -> None:
    """Failing requests until the server goes away; keeps every event id the app answered with."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        while not stop.is_set():
            try:
                response = client.get("/fail")
            except httpx.TransportError:
                return
            if response.status_code == 500 and response.json().get("event_id"):
                ids.append(response.json()["event_id"])


@pytest.mark.slow
def test_sigterm_mid_burst_keeps_every_accepted_event(db_url: str, store: Store) -> None:
    """Every event id returned before, during and after a SIGTERM (and a restart) is in the store."""
    port = free_port()
    server = _serve(db_url, port)
    ids: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_burst, args=(port, ids, stop)) for _ in range(6)]
    for client in clients:
        client.start()
    while len(ids) < 300 and server.poll() is None:
        time.sleep(0.01)
    server.send_signal(signal.SIGTERM)  # in the middle of the burst
    for client in clients:
        client.join(60)
    _, stderr = server.communicate(timeout=90)
    assert server.returncode in (0, -signal.SIGTERM), stderr  # uvicorn re-raises the signal once done
    pending = int(re.search(r"pending at shutdown: (\d+)", stderr).group(1))  # type: ignore[union-attr]
    assert pending > 0, "the burst should leave events waiting for the store at SIGTERM"
    assert "closed: True" in stderr

    server = _serve(db_url, port)  # restart, and capture a few more
    after: list[str] = []
    _burst_some(port, after, 20)
    server.send_signal(signal.SIGTERM)
    server.communicate(timeout=60)
    accepted = ids + after
    with store.engine.connect() as conn:
        stored = set(conn.execute(select(error_events.c.event_id)).scalars())
    assert len(accepted) == len(set(accepted)) and len(accepted) > 300
    assert sorted(set(accepted) - stored) == []
    stop.set()


def _burst_some(port: int, ids: list[str], n: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for _ in range(n):
            ids.append(client.get("/fail").json()["event_id"])
