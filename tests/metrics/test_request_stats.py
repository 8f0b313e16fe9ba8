"""Per-minute request statistics: counted in memory, added to the store's rows on flush."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select

from kansoku.metrics import RequestStats
from kansoku.store.tables import metadata, request_stats


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    """A real SQLite store with kansoku's tables."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _rows(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(request_stats).order_by(request_stats.c.minute)
        return [dict(row) for row in conn.execute(query).mappings()]


def test_requests_are_counted_by_minute() -> None:
    """Requests, 4xx, 5xx, the duration sum and cumulative latency buckets, per minute."""
    clock = Clock(600.0)  # minute 10
    stats = RequestStats("shop", (0.1, 0.5), clock=clock)
    stats.record(200, 0.05)
    stats.record(404, 0.2)
    stats.record(503, 0.9)
    clock.now = 660.0  # minute 11
    stats.record(200, 0.1)
    assert stats.pending() == {
        10: {"requests": 3, "errors_4xx": 1, "errors_5xx": 1, "duration_sum": pytest.approx(1.15),
             "buckets": {"0.1": 1, "0.5": 2, "+Inf": 3}},
        11: {"requests": 1, "errors_4xx": 0, "errors_5xx": 0, "duration_sum": 0.1,
             "buckets": {"0.1": 1, "0.5": 1, "+Inf": 1}},
    }


def test_flush_writes_and_later_flushes_add(engine: Any) -> None:
    """A flush writes one row per minute for this process; the next flush adds to the same rows."""
    clock = Clock(600.0)
    stats = RequestStats("shop", (0.1,), clock=clock)
    stats.record(200, 0.05)
    assert stats.flush(engine) == 1
    assert stats.flush(engine) == 0  # nothing new
    stats.record(500, 0.3)
    assert stats.flush(engine) == 1
    assert _rows(engine) == [{
        "minute": 10, "service": "shop", "instance": f"{socket.gethostname()}:{os.getpid()}",
        "requests": 2, "errors_4xx": 0, "errors_5xx": 1, "duration_sum": pytest.approx(0.35),
        "buckets": {"0.1": 1, "+Inf": 2},
    }]
    assert stats.pending() == {}


def test_failed_flush_keeps_the_counts(tmp_path: Path) -> None:
    """When the store cannot be written, the counts stay for the next flush and the error is raised."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    stats = RequestStats("shop", (0.1,), clock=Clock(600.0))
    stats.record(200, 0.05)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        stats.flush(engine)
    assert stats.pending()[10]["requests"] == 1
    metadata.create_all(engine)
    assert stats.flush(engine) == 1
    assert _rows(engine)[0]["requests"] == 1
    engine.dispose()


@pytest.mark.postgres
def test_postgres_flush(postgres_url: str) -> None:
    """The same rows on PostgreSQL."""
    engine = sqlalchemy.create_engine(postgres_url)
    metadata.create_all(engine, tables=[request_stats])
    try:
        stats = RequestStats("pg-shop", (0.1,), clock=Clock(1200.0))
        stats.record(200, 0.01)
        stats.record(200, 0.01)
        stats.flush(engine)
        stats.record(429, 0.2)
        stats.flush(engine)
        row = next(r for r in _rows(engine) if r["service"] == "pg-shop")
        assert (row["minute"], row["requests"], row["errors_4xx"], row["buckets"]) == (
            20, 3, 1, {"0.1": 2, "+Inf": 3})
    finally:
        engine.dispose()


def test_http_metrics_count_the_statistics_they_are_given() -> None:
    """HttpMetrics.observe with stats of the same buckets counts both; other buckets are left alone."""
    from prometheus_client import CollectorRegistry

    from kansoku.metrics import HttpMetrics
    from kansoku.settings import load_settings

    settings = load_settings(latency_buckets=(0.1, 0.5))
    shared = RequestStats("shop", (0.5, 0.1), clock=Clock(600.0))
    metrics = HttpMetrics(CollectorRegistry(), settings, stats=shared)
    metrics.observe("GET", "/a", 200, 0.05, 0, 0)
    metrics.observe("GET", "/a", 503, 0.3, 0, 0)
    assert metrics.stats is shared and shared.pending() == {
        10: {"requests": 2, "errors_4xx": 0, "errors_5xx": 1, "duration_sum": pytest.approx(0.35),
             "buckets": {"0.1": 1, "0.5": 2, "+Inf": 2}}}
    other = RequestStats("shop", (1.0,), clock=Clock(600.0))
    unshared = HttpMetrics(CollectorRegistry(), settings, stats=other)
    unshared.observe("GET", "/a", 200, 0.05, 0, 0)
    assert unshared.stats is None and other.pending() == {}


def test_flush_waits_for_another_writer_on_the_same_file(tmp_path: Path) -> None:
    """A flush while another connection holds the write lock waits for it, not "database is locked"."""
    import threading

    from kansoku.store import create_store_engine

    url = f"sqlite:///{tmp_path / 'k.db'}"
    engine, other = create_store_engine(url), create_store_engine(url)
    metadata.create_all(engine)
    stats = RequestStats("shop", (0.1,), clock=Clock(600.0))
    stats.record(200, 0.05)
    stats.flush(engine)  # the row exists: the next flush reads it, then updates it
    stats.record(200, 0.05)
    holder = other.raw_connection()
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO kansoku_request_stats (minute, service, instance, requests, errors_4xx,"
                   " errors_5xx, duration_sum, buckets) VALUES (1, 'other', 'x', 1, 0, 0, 0, '{}')")
    releaser = threading.Timer(0.3, holder.commit)
    releaser.start()
    try:
        assert stats.flush(engine) == 1
    finally:
        releaser.join()
        holder.close()
    assert [row["requests"] for row in _rows(engine) if row["service"] == "shop"] == [2]
    engine.dispose()
    other.dispose()
