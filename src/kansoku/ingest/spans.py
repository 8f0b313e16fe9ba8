"""Ingested spans into the span store: a bounded queue and one writer thread.

`submit(rows)` queues one request's spans (False when the queue is full: answer 503, the sender
retries). The writer inserts each batch in one transaction; a span id stored already (a sender's
retry) is skipped. Names, attributes, events, links, status messages and resource attributes go
through the same `Redactor` as native spans and events first (in the writer's thread). While the
store fails, the batch is retried with backoff and the queue fills
up instead of losing what was acknowledged; `close(timeout)` writes what is queued.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import orjson
from sqlalchemy import Engine

from kansoku._safety import report_internal_error
from kansoku._worker import BackgroundWorker
from kansoku.redact import Redactor
from kansoku.store import write_transaction
from kansoku.store.tables import spans as spans_table

__all__ = ["COLUMNS", "SpanSink"]

COLUMNS: Final = ("span_id", "trace_id", "parent_id", "name", "kind", "service", "start_time", "end_time",
                  "duration_ms", "status", "status_message", "attributes", "events", "is_root", "project",
                  "links", "resource")
_JSON: Final = frozenset({"attributes", "events", "links", "resource"})


def redact_row(row: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The row with every text a sender chose (name, attributes, events, links...) redacted."""
    clean = dict(row)
    clean["name"] = redactor.redact_text(row["name"])[:256]
    if row.get("status_message"):
        clean["status_message"] = redactor.redact_text(row["status_message"])
    for name in ("attributes", "events", "links", "resource"):
        if row.get(name):
            clean[name] = redactor.redact(row[name])
    return clean


def _driver_row(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(orjson.dumps(row[c], default=str).decode() if c in _JSON and row[c] is not None else row[c]
                 for c in COLUMNS)


class SpanSink:
    """Writes ingested span rows (dicts with COLUMNS) to `kansoku_spans` from one thread."""

    def __init__(self, engine: Engine, redactor: Redactor, *, maxsize: int = 10_000) -> None:
        self.engine = engine
        self.redactor = redactor
        self.stored = 0
        self.failures = 0
        self.closing = False
        self._pause = threading.Event()
        self._worker = BackgroundWorker("ingest-spans", maxsize=maxsize, batch=self._write_batch, max_batch=200)
        postgres = engine.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        columns, marks = ", ".join(COLUMNS), ", ".join([mark] * len(COLUMNS))
        verb, tail = ("INSERT", " ON CONFLICT (span_id) DO NOTHING") if postgres else ("INSERT OR IGNORE", "")
        self._sql = f"{verb} INTO {spans_table.name} ({columns}) VALUES ({marks}){tail}"

    def submit(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Queue one request's rows; False (nothing queued) when the queue is full."""
        return not rows or self._worker.submit(list(rows))

    @property
    def depth(self) -> int:
        """Requests' worth of spans waiting."""
        return self._worker.depth

    def _write_batch(self, items: list[list[dict[str, Any]]]) -> None:
        rows = [_driver_row(redact_row(row, self.redactor)) for item in items for row in item]
        backoff = 0.05
        while True:
            try:
                with write_transaction(self.engine) as conn:
                    conn.exec_driver_sql(self._sql, rows)
            except Exception as exc:  # the store is down or refuses: retry, keeping the queue bounded
                self.failures += 1
                report_internal_error("ingest.spans", exc)
                if self.closing and backoff >= 1.0:
                    return  # shutting down with the store gone: give up (reported)
                self._pause.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.stored += len(rows)
            return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued span is written."""
        return self._worker.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued (retrying the store a little), then stop the thread."""
        flushed = self._worker.flush(timeout)
        self.closing = True
        return self._worker.close(1.0) and flushed
