"""`kansoku server` as a process: SIGTERM during an ingest burst loses no acknowledged event."""

from __future__ import annotations

import signal
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

from .conftest import ServerProcess, sentry_envelope, wait_for

pytestmark = pytest.mark.slow
TOTAL = 5000


def test_sigterm_during_a_burst_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    """5,000 events sent by 8 clients, SIGTERM midway: every event answered 2xx is in the store."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "burst")
    store.close()
    server = ServerProcess(url, tmp_path, KANSOKU_MAX_EVENTS_PER_GROUP="100000")
    endpoint = f"{server.url}/api/{project.id}/envelope/?sentry_key={project.key}"
    try:
        server.wait_ready()
        acknowledged: list[str] = []
        lock = threading.Lock()
        ids = iter([uuid.uuid4().hex for _ in range(TOTAL)])

        def client() -> None:
            with httpx.Client(timeout=10) as http:
                for event_id in ids:  # each id taken by exactly one thread (next() holds the GIL)
                    try:
                        answer = http.post(endpoint, content=sentry_envelope(event_id))
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
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status is SIGTERM's.
        assert server.stop() == -signal.SIGTERM, server.log.read_text()[-3000:]
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = set(conn.execute(select(error_events.c.event_id)).scalars())
    engine.dispose()
    assert 1000 <= len(acknowledged) < TOTAL  # the SIGTERM did land mid-burst
    assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged events lost"
    print(f"acknowledged {len(acknowledged)} of {TOTAL} before the SIGTERM took effect; stored {len(stored)}")


def test_workers_share_the_port_and_the_store(tmp_path: Path) -> None:
    """`kansoku server --workers 2`: events sent to the one port, handled by both processes, are one group."""
    import psutil

    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "workers")
    store.close()
    server = ServerProcess(url, tmp_path, "--workers", "2")
    try:
        server.wait_ready()
        assert len(psutil.Process(server.proc.pid).children()) >= 2  # uvicorn's two worker processes
        endpoint = f"{server.url}/api/{project.id}/envelope/?sentry_key={project.key}"
        for _ in range(60):  # a new connection each time: the kernel spreads them over the workers
            assert httpx.post(endpoint, content=sentry_envelope(uuid.uuid4().hex)).status_code == 200
    finally:
        server.stop()
    engine = create_engine(url)
    from kansoku.store.tables import error_groups

    with engine.connect() as conn:
        counts = conn.execute(select(error_groups.c.count)).scalars().all()
    engine.dispose()
    assert counts == [60]
