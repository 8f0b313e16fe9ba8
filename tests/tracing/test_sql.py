"""SQL query spans: engines made before tracing, instrument_engine(), sanitised text, kansoku's own store quiet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import create_engine, text  # imported before any instrumentation, as apps do

from kansoku import tracing
from kansoku.settings import load_settings
from kansoku.store import create_store_engine
from kansoku.tracing import configure_tracing, instrument_engine
from kansoku.tracing._sql import operation_of, sanitize_sql


def _provider(exporter: InMemorySpanExporter, **settings: object) -> TracerProvider:
    provider = configure_tracing(load_settings(store_spans=False, **settings), None, "sql-test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def early_engine(tmp_path: Path) -> Iterator[object]:
    """An app engine made with `create_engine` before tracing is configured."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(text("create table users (id integer primary key, email text)"))
    yield engine
    engine.dispose()


def test_an_engine_made_before_instrumentation_gets_query_spans(early_engine: object,
                                                                exporter: InMemorySpanExporter) -> None:
    """instrument_sqlalchemy traces an engine created earlier: one CLIENT span per query, under the caller."""
    provider = _provider(exporter, instrument_sqlalchemy=True)
    with provider.get_tracer("app").start_as_current_span("request") as parent, \
            early_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("select id from users where email = 'ann@example.com' and id > 42"))
    [query] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert query.name == "SELECT app.db"
    assert query.parent is not None and query.parent.span_id == parent.get_span_context().span_id
    assert dict(query.attributes or {}) == {
        "db.system.name": "sqlite", "db.namespace": "app.db", "db.operation.name": "SELECT",
        "db.query.text": "select id from users where email = ? and id > ?",
    }
    assert not [s for s in exporter.get_finished_spans() if s.name == "connect"]
    provider.shutdown()


def test_kansoku_store_engine_makes_no_spans(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    """The store's engine carries kansoku_untraced: its queries make no span, root or child."""
    store = create_store_engine(f"sqlite:///{tmp_path / 'k.db'}")
    provider = _provider(exporter, instrument_sqlalchemy=True)
    with store.connect() as conn:
        conn.execute(text("select 1"))
    with provider.get_tracer("app").start_as_current_span("request"), store.connect() as conn:
        conn.execute(text("select 2"))
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]
    provider.shutdown()
    store.dispose()


def test_instrument_engine_traces_one_engine_with_the_setting_off(
        early_engine: object, tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    """instrument_engine() before configuration: that engine is traced, another one is not."""
    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    assert instrument_engine(early_engine) is early_engine
    provider = _provider(exporter)
    with provider.get_tracer("app").start_as_current_span("request"):
        for engine in (early_engine, other):
            with engine.connect() as conn:  # type: ignore[attr-defined]
                conn.execute(text("select count(*) from sqlite_master"))
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["SELECT app.db", "request"]
    tracing.uninstrument_libraries()
    with early_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("select 1"))
    assert len(exporter.get_finished_spans()) == 2  # listeners removed
    provider.shutdown()
    other.dispose()


def test_a_failing_query_ends_its_span_as_an_error(early_engine: object, exporter: InMemorySpanExporter) -> None:
    """A query the database rejects: the span ends with status ERROR and error.type."""
    provider = _provider(exporter, instrument_sqlalchemy=True)
    with pytest.raises(Exception, match="no such table"), early_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("select * from missing"))
    [query] = exporter.get_finished_spans()
    assert query.status.status_code is StatusCode.ERROR
    assert (query.attributes or {})["error.type"] == "OperationalError"
    provider.shutdown()


def test_untraced_connection_option(early_engine: object, exporter: InMemorySpanExporter) -> None:
    """An app can keep one connection's queries out of its traces with the same execution option."""
    provider = _provider(exporter, instrument_sqlalchemy=True)
    with early_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execution_options(kansoku_untraced=True).execute(text("select 1"))
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


@pytest.mark.parametrize(("statement", "expected"), [
    ("SELECT * FROM t WHERE a = 'it''s' AND b = 3.5e2", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("select t1.c2 from t1 where x = ? limit 10", "select t1.c2 from t1 where x = ? limit ?"),
    ("insert into t (a) values (%(a)s)", "insert into t (a) values (%(a)s)"),
])
def test_sanitize_sql(statement: str, expected: str) -> None:
    """Literals become ?, identifiers and placeholders stay."""
    assert sanitize_sql(statement) == expected


def test_operation_of_skips_leading_comments() -> None:
    """The operation is the first keyword after comments, upper case."""
    assert operation_of("/* app */ update t set a = 1") == "UPDATE"
    assert operation_of("   ") is None
