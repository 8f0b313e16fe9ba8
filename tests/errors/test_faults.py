"""Faults (must-show): the store unwritable or down; the app answers as before; nothing accepted is lost."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from kansoku import _safety
from kansoku.errors import ErrorCollector, ErrorTracker
from kansoku.settings import load_settings
from kansoku.store import Store, queries

from ..store.pgdb import drop_postgres_database, fresh_postgres_database
from .conftest import load_module


def _failing_app(tracker: ErrorTracker) -> Any:
    source = Path(__file__).with_name("failing_app.py")
    module = load_module(source, source.read_text(), "failing_app_inproc")
    return module.build(tracker)


async def _fail(client: httpx.AsyncClient, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        response = await client.get("/fail")
        assert (response.status_code, sorted(response.json())) == (500, ["error", "event_id"])
        ids.append(response.json()["event_id"])
    assert all(ids)
    return ids


def _wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make a SQLite store's directory and files unwritable, even for root (immutable attribute)."""
    paths = [directory, *(p for p in directory.iterdir() if not p.name.endswith("-shm"))]  # -shm is mmap'ed
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a directory read-only")
        made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
        if made.returncode != 0:
            subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True, check=False)
            pytest.skip(f"this filesystem has no immutable attribute: {made.stderr.decode().strip()}")
        undo = ["chattr", "-i", *map(str, paths)]
        try:
            yield
        finally:
            subprocess.run(undo, check=True)
        return
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def _stored(store: Store, ids: list[str]) -> list[str]:
    group = queries.get_group(store.engine, ids[0], events=200)
    assert group is not None
    return sorted(e["event_id"] for e in group["events"])


async def test_read_only_sqlite_directory(store: Store, db_url: str,
                                          make_tracker: Callable[..., ErrorTracker],
                                          log_output: io.StringIO) -> None:
    """Unwritable SQLite: requests answer as before, the problem is reported (log line, metrics,
    ping, readiness), and everything accepted is stored after recovery."""
    tracker = make_tracker()
    metrics = CollectorRegistry()
    metrics.register(ErrorCollector(tracker))
    transport = httpx.ASGITransport(app=_failing_app(tracker))
    before = _safety.internal_error_count("errors.store")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ids = await _fail(client, 3)
        assert tracker.flush(10)
        directory = Path(db_url.removeprefix("sqlite:///")).parent
        with read_only(directory):
            store.engine.dispose()  # the next write opens a new connection, as after a restart
            ids += await _fail(client, 5)
            problem = _wait_for(lambda: "5 events waiting in memory" in (tracker.problem() or "")
                                and tracker.problem())
            assert problem.startswith("error store failing for")
            assert "attempt to write a readonly database" in problem
            assert (store.ping() or "").startswith("store not writable")
            assert _safety.internal_error_count("errors.store") > before
            assert metrics.get_sample_value("kansoku_errors_healthy") == 0
            assert metrics.get_sample_value("kansoku_errors_waiting") == 5
        ids += await _fail(client, 2)
    assert tracker.flush(20)
    assert tracker.problem() is None and store.ping() is None
    assert _stored(store, ids) == sorted(ids)
    names = ("kansoku_errors_healthy", "kansoku_errors_waiting", "kansoku_errors_stored_total")
    assert [metrics.get_sample_value(name) for name in names] == [1, 0, 10]
    out = log_output.getvalue()
    assert "error store unavailable: events are kept in memory and retried" in out
    assert "error store available again" in out


@pytest.mark.postgres
@pytest.mark.slow
async def test_postgres_stopped_mid_run(postgres: Any, make_tracker: Callable[..., ErrorTracker]) -> None:
    """PostgreSQL stops, starts again: capture keeps answering, ping and problem report, nothing is lost."""
    url = fresh_postgres_database(postgres.url)
    pg = Store.open(load_settings(database_url=url), migrate=True)
    tracker = make_tracker(engine=pg.engine)
    transport = httpx.ASGITransport(app=_failing_app(tracker))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ids = await _fail(client, 3)
            assert tracker.flush(10)
            postgres.stop()
            try:
                ids += await _fail(client, 5)
                assert _wait_for(tracker.problem).startswith("error store failing for")
                assert (pg.ping() or "").startswith("store unreachable: OperationalError")
            finally:
                postgres.start()
            ids += await _fail(client, 2)
        assert tracker.flush(30)
        assert tracker.problem() is None and pg.ping() is None
        assert _stored(pg, ids) == sorted(ids)
    finally:
        tracker.close(5)
        pg.close()
        drop_postgres_database(url)
