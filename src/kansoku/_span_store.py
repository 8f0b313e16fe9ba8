"""A span exporter into kansoku's own store (`kansoku_spans`), for the dashboard with no collector.

It runs in the BatchSpanProcessor's thread, never on the request path: one transaction per batch,
and a bound on the table: past `max_spans` the oldest spans are deleted (down to 99 %, so that the
delete runs once per hundredth of the bound rather than once per batch), and spans older than the
retention go every `prune_every` seconds. Export happens with OpenTelemetry's instrumentation
suppressed (the processor sets that), so an instrumented SQLAlchemy does not trace these inserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy import Connection, Engine, delete, func, select

from kansoku._safety import report_internal_error
from kansoku.store import write_transaction
from kansoku.store.tables import spans as spans_table

__all__ = ["StoreSpanExporter", "span_row"]


def _json_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in attributes.items()}


def span_row(span: ReadableSpan) -> dict[str, Any]:
    """The `kansoku_spans` row of a finished span (times in epoch seconds).

    A span whose parent is in another process (a remote parent) is a root of this service: it keeps
    its `parent_id`, so traces across services can still be joined, and has `is_root` true.
    """
    ctx = span.context
    assert ctx is not None  # finished SDK spans always have one
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or start
    return {
        "span_id": format(ctx.span_id, "016x"),
        "trace_id": format(ctx.trace_id, "032x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name[:256],
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "unknown"))[:128],
        "start_time": start / 1e9,
        "end_time": end / 1e9,
        "duration_ms": (end - start) / 1e6,
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": _json_attributes(span.attributes),
        "events": [
            {"name": event.name, "timestamp": event.timestamp / 1e9, "attributes": _json_attributes(event.attributes)}
            for event in span.events
        ],
        "is_root": parent is None or parent.is_remote,
    }


_COLUMNS = ("span_id", "trace_id", "parent_id", "name", "kind", "service", "start_time", "end_time",
            "duration_ms", "status", "status_message", "attributes", "events", "is_root")
_JSON_COLUMNS = frozenset({"attributes", "events"})


def _driver_row(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(orjson.dumps(row[c], default=str).decode() if c in _JSON_COLUMNS else row[c] for c in _COLUMNS)


class StoreSpanExporter(SpanExporter):
    """Writes spans to `kansoku_spans` in batches and keeps the table bounded."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_spans: int = 200_000,
        retention_seconds: float | None = None,
        prune_every: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.max_spans = max_spans
        self.retention_seconds = retention_seconds
        self.prune_every = prune_every
        self.clock = clock
        self._count: int | None = None  # rows in the table, as far as this process knows
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        columns, marks = ", ".join(_COLUMNS), ", ".join([mark] * len(_COLUMNS))
        self._insert_sql = f"INSERT INTO {spans_table.name} ({columns}) VALUES ({marks})"  # noqa: S608 - constants
        self._last_prune = clock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Insert one batch in one transaction, then enforce the bound."""
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            rows = [_driver_row(span_row(span)) for span in spans]
            with write_transaction(self.engine) as conn:
                # The driver's executemany with JSON already encoded by orjson: several times faster
                # than the ORM-free Core insert, and this runs on a thread that shares the GIL with
                # the app's requests.
                conn.exec_driver_sql(self._insert_sql, rows)
                self._bound(conn, len(rows))
        except Exception as exc:  # the processor's thread has no caller to tell
            report_internal_error("tracing.store_exporter", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _bound(self, conn: Connection, inserted: int) -> None:
        now = self.clock()
        periodic = now - self._last_prune >= self.prune_every
        if self._count is None or periodic:  # recount now and then: other processes insert too
            self._count = int(conn.execute(select(func.count()).select_from(spans_table)).scalar_one())
        else:
            self._count += inserted
        if periodic:
            self._last_prune = now
            if self.retention_seconds is not None:
                cutoff = now - self.retention_seconds
                removed = conn.execute(delete(spans_table).where(spans_table.c.start_time < cutoff))
                self._count -= max(removed.rowcount, 0)
        if self._count > self.max_spans:
            self._prune_oldest(conn)

    def _prune_oldest(self, conn: Connection) -> None:
        target = self.max_spans - self.max_spans // 100
        excess = int(conn.execute(select(func.count()).select_from(spans_table)).scalar_one()) - target
        if excess > 0:
            oldest = select(spans_table.c.span_id).order_by(spans_table.c.start_time).limit(excess)
            conn.execute(delete(spans_table).where(spans_table.c.span_id.in_(oldest)))
        self._count = target if excess > 0 else target + excess

    def shutdown(self) -> None:
        """Nothing to release: the engine belongs to the store."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every export is written synchronously."""
        return True
