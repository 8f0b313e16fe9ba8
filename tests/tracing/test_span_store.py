"""Spans into kansoku's own store with no OTLP endpoint: rows, bound, retention, no feedback loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, func, select

from kansoku import tracing
from kansoku.settings import load_settings
from kansoku.store import create_store_engine
from kansoku.store.tables import metadata, spans
from kansoku.tracing import RequestTracer, StoreSpanExporter, configure_tracing, traced

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def make_engine(url: str) -> Engine:
    """A kansoku store engine with the schema created."""
    engine = create_store_engine(url)
    metadata.create_all(engine)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A real SQLite file store."""
    return make_engine(f"sqlite:///{tmp_path / 'k.db'}")


def rows(engine: Engine) -> list[dict[str, object]]:
    """Every span row, oldest first."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(spans).order_by(spans.c.start_time))]


def test_request_and_traced_spans_land_in_the_store(engine: Engine) -> None:
    """With no endpoint, a request's server span and its child are stored with their link and data."""
    provider = configure_tracing(load_settings(service_name="shop"), engine)
    tracing.configure(provider=provider)

    @traced(name="shop.checkout")
    def checkout() -> None:
        raise ValueError("card declined")

    request_tracer = RequestTracer(provider)
    handle = request_tracer.start({"type": "http", "method": "POST", "path": "/checkout", "headers": [
        (b"traceparent", f"00-{TRACE}-{PARENT}-01".encode())]})
    assert handle is not None
    with pytest.raises(ValueError, match="card declined"):
        checkout()
    request_tracer.finish(handle, 500, "/checkout", None)
    assert provider.force_flush(5000)
    child, server = sorted(rows(engine), key=lambda row: row["name"] != "shop.checkout")
    assert server["trace_id"] == child["trace_id"] == TRACE
    assert (server["name"], server["kind"], server["service"]) == ("POST /checkout", "SERVER", "shop")
    assert (server["parent_id"], server["is_root"]) == (PARENT, True)  # remote parent: root here
    assert (child["parent_id"], child["is_root"]) == (handle.span_id, False)
    assert (server["status"], child["status"]) == ("ERROR", "ERROR")
    assert child["status_message"] == "ValueError: card declined"
    assert server["attributes"]["http.response.status_code"] == 500  # type: ignore[index]
    assert [event["name"] for event in child["events"]] == ["exception"]  # type: ignore[attr-defined]
    assert float(server["end_time"]) >= float(server["start_time"])  # type: ignore[arg-type]
    assert float(server["duration_ms"]) >= 0  # type: ignore[arg-type]
    provider.shutdown()


def _spans(count: int, start_ns: int = 1_000_000_000_000) -> list[ReadableSpan]:
    """`count` finished spans with start times one second apart."""
    memory = InMemorySpanExporter()
    provider = configure_tracing(load_settings(store_spans=False), None, "gen")
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("gen")
    for i in range(count):
        start = start_ns + i * 1_000_000_000
        tracer.start_span(f"op-{i:03d}", start_time=start).end(end_time=start + 1000)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_table_stays_bounded_and_keeps_the_newest(engine: Engine) -> None:
    """Past max_spans the oldest spans go; the table never holds more than the bound."""
    exporter = StoreSpanExporter(engine, max_spans=100)
    made = _spans(250)
    for start in range(0, 250, 25):
        exporter.export(made[start:start + 25])
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(spans)).scalar_one() <= 100
    kept = [row["name"] for row in rows(engine)]
    assert kept == [f"op-{i:03d}" for i in range(250 - len(kept), 250)]
    assert len(kept) >= 99


def test_retention_deletes_old_spans_every_prune_interval(engine: Engine) -> None:
    """Spans older than the retention go at the next periodic prune."""
    now = [2_000.0]
    exporter = StoreSpanExporter(engine, retention_seconds=500.0, prune_every=60.0, clock=lambda: now[0])
    exporter.export(_spans(10, start_ns=1_000 * 1_000_000_000))  # start times 1000 .. 1009 s
    assert len(rows(engine)) == 10
    now[0] = 1_505.5
    exporter.export(_spans(1, start_ns=1_500 * 1_000_000_000))
    assert len(rows(engine)) == 11  # no prune yet: less than prune_every since the last one
    now[0] = 2_065.5
    exporter.export(_spans(1, start_ns=2_000 * 1_000_000_000))
    assert [row["name"] for row in rows(engine)] == ["op-000"]  # only the span started at 2000 s
    assert rows(engine)[0]["start_time"] == 2_000.0


def test_store_writes_are_not_traced_by_the_sqlalchemy_instrumentation(tmp_path: Path) -> None:
    """instrument_sqlalchemy traces the app's queries, never the exporter's own inserts (no loop)."""
    settings = load_settings(instrument_sqlalchemy=True, service_name="loop")
    store_engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    provider = configure_tracing(settings, store_engine)  # the app's engine is created after this
    app_engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with provider.get_tracer("app").start_as_current_span("request"), app_engine.connect() as conn:
        conn.execute(sqlalchemy.text("select 1"))
    assert provider.force_flush(5000)
    for _ in range(3):  # flushing again must not find spans made by the previous export
        assert provider.force_flush(5000)
    names = sorted(str(row["name"]).split()[0] for row in rows(store_engine))
    assert names == ["SELECT", "request"]  # "SELECT app.db": the app's query only, no connect spans
    provider.shutdown()


def test_export_failure_is_reported_not_raised(tmp_path: Path) -> None:
    """A store that cannot be written makes export() fail quietly (the app goes on)."""
    from kansoku import _safety

    engine = create_store_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema: inserts fail
    exporter = StoreSpanExporter(engine)
    before = _safety.internal_error_count("tracing.store_exporter")
    assert exporter.export(_spans(1)).name == "FAILURE"
    assert _safety.internal_error_count("tracing.store_exporter") == before + 1


@pytest.mark.postgres
def test_spans_land_in_postgresql(postgres_url: str) -> None:
    """The same exporter writes and bounds spans in a real PostgreSQL store."""
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(spans.delete())
    exporter = StoreSpanExporter(engine, max_spans=100)
    made = _spans(130)
    exporter.export(made[:70])
    exporter.export(made[70:])
    kept = [row["name"] for row in rows(engine)]
    assert len(kept) <= 100 and kept[-1] == "op-129"
    engine.dispose()
