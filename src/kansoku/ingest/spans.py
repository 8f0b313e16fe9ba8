"""Ingested spans into the span store, through a `Sink` (a bounded queue and one writer thread).

The writer inserts each batch in one transaction; a span id stored already (a sender's retry) is
skipped. Names, attributes, events, links, status messages and resource attributes go through the
same `Redactor` as native spans and events first (in the writer's thread).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from sqlalchemy import Engine

from kansoku.ingest.sink import Sink
from kansoku.redact import Redactor
from kansoku.store import write_transaction
from kansoku.store.tables import spans as spans_table

__all__ = ["COLUMNS", "redact_row", "span_sink"]

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


def span_sink(engine: Engine, redactor: Redactor, *, maxsize: int = 10_000) -> Sink:
    """The sink of ingested span rows (dicts with COLUMNS) into `kansoku_spans`."""
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    columns, marks = ", ".join(COLUMNS), ", ".join([mark] * len(COLUMNS))
    verb, tail = ("INSERT", " ON CONFLICT (span_id) DO NOTHING") if postgres else ("INSERT OR IGNORE", "")
    sql = f"{verb} INTO {spans_table.name} ({columns}) VALUES ({marks}){tail}"

    def prepare(row: dict[str, Any]) -> tuple[Any, ...]:
        return _driver_row(redact_row(row, redactor))

    def write(rows: list[tuple[Any, ...]]) -> None:
        with write_transaction(engine) as conn:
            conn.exec_driver_sql(sql, rows)

    return Sink("ingest-spans", prepare, write, maxsize=maxsize)
