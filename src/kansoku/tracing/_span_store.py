"""Spans into kansoku's own store (`kansoku_spans`), for the dashboard with no collector.

`StoreSpanProcessor` decides which traces are kept, on the request path and in constant time;
`StoreSpanExporter` writes the kept spans from the BatchSpanProcessor's thread.

The budget. Nobody needs every request of a busy service in SQLite, and storing one costs about
as much as serving it, so each process keeps at most `traces_per_second` traces in the store
(`trace_store_rate`: a token bucket holding one second's worth; 0: no limit). A trace is decided
when its local root ends (the server span, or any span whose parent is remote or absent): kept
if the root failed (status ERROR: an exception, a 5xx), took `slow_seconds` or more (the
`slow_threshold_ms` setting), or a token is left. A trace over the budget is counted
(`not_stored_traces`, and its spans in `not_stored_spans`) and its spans never become rows, nor,
for kansoku's own spans, `ReadableSpan`s.

A trace's other spans (the request's `traced` calls, queries and outgoing calls) mostly end before
its root: they wait in memory and follow the root's decision. Spans that end after it follow it
too while it is remembered (a table of 4096 recent trace ids per outcome, each id in the slot of
its low bits). Waiting is bounded: a trace with 512 spans waiting (a long batch job) is decided
early, by the budget alone, and its later spans follow; past 2048 waiting spans in all, the
oldest trace's are discarded (`overflow_spans`). Sampling is not changed by any of this: every
request still has its trace id in logs and exemplars, and an OTLP endpoint receives every sampled
span (the budget applies to the local store only).

The exporter runs in the BatchSpanProcessor's thread, never on the request path: one transaction
per batch, and a bound on the table: past `max_spans` the oldest spans are deleted (down to 99 %,
so that the delete runs once per hundredth of the bound rather than once per batch), and spans
older than the retention go every `prune_every` seconds. Export happens with OpenTelemetry's
instrumentation suppressed (the processor sets that), so an instrumented SQLAlchemy does not trace
these inserts.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import orjson
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode
from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import Connection, Engine, delete, func, select

from kansoku._safety import report_internal_error
from kansoku.store import write_transaction
from kansoku.store.tables import spans as spans_table
from kansoku.tracing._spans import LightSpan, LightSpanProcessor

__all__ = ["SpanStoreCollector", "StoreSpanExporter", "StoreSpanProcessor", "span_row"]

REMEMBERED_DECISIONS: Final = 4096  # a power of two
_SLOTS: Final = REMEMBERED_DECISIONS - 1
EARLY_DECISION_SPANS: Final = 512
MAX_WAITING_SPANS: Final = 2048
_ERROR: Final = StatusCode.ERROR


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


class StoreSpanProcessor(LightSpanProcessor):
    """Keeps at most `traces_per_second` traces (errors and slow ones always) and hands their spans
    to `downstream` (default: a BatchSpanProcessor around `exporter`); see the module docstring."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        traces_per_second: float = 50.0,
        slow_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        downstream: SpanProcessor | None = None,
    ) -> None:
        if downstream is None:
            if exporter is None:
                raise ValueError("StoreSpanProcessor needs an exporter or a downstream processor")
            downstream = BatchSpanProcessor(exporter)
        self.downstream = downstream
        self.rate = traces_per_second
        # The budget as a token bucket of one second's worth, kept as its "generic cell rate" form:
        # a trace may be kept from `_earliest` on, and each one kept moves that `_interval` later.
        self._interval = 1.0 / traces_per_second if traces_per_second else 0.0
        self._tolerance = (max(traces_per_second, 1.0) - 1.0) * self._interval + 1e-9  # float rounding
        self._clock = clock
        self._due = clock()  # when the bucket would be empty after the traces kept so far
        self._earliest = self._due - self._tolerance
        self._slow_ns = slow_seconds * 1e9
        self._lock = threading.Lock()
        # trace id -> spans ended before the root; ordered, to find the oldest trace in constant time
        self._waiting: OrderedDict[int, list[ReadableSpan | LightSpan]] = OrderedDict()
        self._waiting_count = 0
        # The recent decisions, for spans that end after their root: the trace ids kept and dropped
        # in two direct-mapped tables (slot: the id's low bits; a newer trace takes the slot over).
        self._kept: list[int] = [0] * REMEMBERED_DECISIONS
        self._dropped: list[int] = [0] * REMEMBERED_DECISIONS
        self._kept_early: set[int] = set()  # long traces kept before their root ended
        self.stored_traces = 0
        self.not_stored_traces = 0
        self.not_stored_spans = 0  # of traces over the budget
        self.overflow_spans = 0  # discarded while waiting for their root (too many waiting)
        # A lock another thread held at fork stays held in the child, and the parent's waiting
        # spans are not the child's to store: a forked worker starts both afresh.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._waiting.clear()
        self._waiting_count = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do before a span ends."""

    def on_end(self, span: ReadableSpan) -> None:
        """An SDK span ended (instrumentation, user tracers)."""
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return
        parent = span.parent
        if not self.rate:
            self._pass(span, parent is None or parent.is_remote)
        elif parent is None or parent.is_remote:
            slow = (span.end_time or 0) - (span.start_time or 0) >= self._slow_ns
            self._root_ended(span, ctx.trace_id, slow or span.status.status_code is _ERROR)
        else:
            self._child_ended(span, ctx.trace_id)

    def on_end_light(self, span: LightSpan) -> None:
        """One of kansoku's spans ended: the same, with no ReadableSpan unless it is kept."""
        if not span.sampled:
            return
        parent = span._parent
        if not self.rate:
            self._pass(span, parent is None or parent.is_remote)
        elif parent is None or parent.is_remote:
            slow = (span._end or 0) - span._start >= self._slow_ns
            self._root_ended(span, span._context.trace_id, slow or span._status.status_code is _ERROR)
        else:
            self._child_ended(span, span._context.trace_id)

    def _pass(self, span: ReadableSpan | LightSpan, root: bool) -> None:
        """No budget: every span goes on at once."""
        if root:
            with self._lock:
                self.stored_traces += 1
        self._hand_on([span])

    def _root_ended(self, root: ReadableSpan | LightSpan, trace_id: int, always: bool) -> None:
        slot = trace_id & _SLOTS
        with self._lock:
            spans = self._waiting.pop(trace_id, None) if self._waiting else None
            if spans is not None:
                self._waiting_count -= len(spans)
            if self._kept_early and trace_id in self._kept_early:  # a long trace, kept already
                self._kept_early.discard(trace_id)
                always = True
            if not (always or self._kept[slot] == trace_id or self._take(self._clock())):
                self._dropped[slot] = trace_id
                self.not_stored_traces += 1
                self.not_stored_spans += 1 + (len(spans) if spans else 0)
                return
            self._kept[slot] = trace_id
            self.stored_traces += 1
        self._hand_on([*spans, root] if spans else [root])

    def _child_ended(self, span: ReadableSpan | LightSpan, trace_id: int) -> None:
        slot = trace_id & _SLOTS
        with self._lock:
            if self._kept[slot] == trace_id or trace_id in self._kept_early:  # kept already
                kept = [span]
            elif self._dropped[slot] == trace_id:
                kept = []
                self.not_stored_spans += 1
            else:
                kept = self._wait(span, trace_id)
        self._hand_on(kept)

    def _wait(self, span: ReadableSpan | LightSpan, trace_id: int) -> list[ReadableSpan | LightSpan]:
        """Hold `span` until its root ends; what to hand on now (a long trace decided early)."""
        spans = self._waiting.setdefault(trace_id, [])
        spans.append(span)
        self._waiting_count += 1
        if len(spans) >= EARLY_DECISION_SPANS:  # a long trace: the budget alone decides, now
            del self._waiting[trace_id]
            self._waiting_count -= len(spans)
            if self._take(self._clock()):
                if len(self._kept_early) >= REMEMBERED_DECISIONS:  # roots that never ended here
                    self._kept_early.clear()
                self._kept_early.add(trace_id)
                return spans
            self._dropped[trace_id & _SLOTS] = trace_id
            self.not_stored_spans += len(spans)
        elif self._waiting_count > MAX_WAITING_SPANS:
            _, oldest = self._waiting.popitem(last=False)
            self._waiting_count -= len(oldest)
            self.overflow_spans += len(oldest)
        return []

    def _hand_on(self, spans: list[ReadableSpan | LightSpan]) -> None:
        for span in spans:
            self.downstream.on_end(span if isinstance(span, ReadableSpan) else span.readable())

    def _take(self, now: float) -> bool:
        """A token from the bucket, refilled at `rate` per second up to one second's worth."""
        if now < self._earliest:
            return False
        self._due = max(self._due, now) + self._interval
        self._earliest = self._due - self._tolerance
        return True

    def waiting(self) -> int:
        """Spans held until their trace is decided."""
        return self._waiting_count

    def shutdown(self) -> None:
        """Spans still waiting for their root are not stored; the rest is flushed."""
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write every kept span now."""
        return self.downstream.force_flush(timeout_millis)


class SpanStoreCollector:
    """The store budget's counters for Prometheus: `registry.register(SpanStoreCollector(processor))`."""

    def __init__(self, processor: StoreSpanProcessor) -> None:
        self.processor = processor

    def describe(self) -> list[Metric]:
        """Nothing to describe ahead: registering must not call collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The counters now."""
        processor = self.processor
        yield CounterMetricFamily("kansoku_traces_stored", "Traces kept for the local span store.",
                                  value=processor.stored_traces)
        yield CounterMetricFamily("kansoku_traces_not_stored",
                                  "Traces over the local span store's budget (trace_store_rate), not stored.",
                                  value=processor.not_stored_traces)
        spans = CounterMetricFamily(
            "kansoku_spans_not_stored", "Spans kept out of the local span store: their trace was over the "
            "budget, or too many were waiting for their root.", labels=["reason"])
        spans.add_metric(["budget"], processor.not_stored_spans)
        spans.add_metric(["overflow"], processor.overflow_spans)
        yield spans


def _after_fork(ref: weakref.ReferenceType[StoreSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor._after_fork()
