"""Trace search on SQLite and PostgreSQL: root fields, HTTP status, errors, durations, any span's attributes."""

from __future__ import annotations

from typing import Any

import pytest

from kansoku.store import Store, write_transaction
from kansoku.store.query_syntax import QuerySyntaxError
from kansoku.store.tables import spans
from kansoku.store.trace_search import get_trace, search_traces

from .conftest import T0


def _span(trace: int, n: int, *, root: bool, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "span_id": f"{trace:08x}{n:08x}", "trace_id": f"{trace:032x}",
        "parent_id": None if root else f"{trace:08x}{0:08x}",
        "name": "GET /orders/{id}", "kind": "SERVER" if root else "INTERNAL", "service": "shop",
        "start_time": T0 + trace, "end_time": T0 + trace + 0.1, "duration_ms": 100.0, "status": "UNSET",
        "status_message": None, "attributes": {}, "events": [], "is_root": root,
    }
    row.update(fields)
    return row


@pytest.fixture
def traced(store: Store) -> Store:
    """Four traces: a fast 200, a slow 200 with a postgres query, a failed 500, another service."""
    rows = [
        _span(1, 0, root=True, attributes={"http.route": "/orders/{id}", "http.response.status_code": 200}),
        _span(2, 0, root=True, duration_ms=900.0,
              attributes={"http.route": "/orders/{id}", "http.response.status_code": 200}),
        _span(2, 1, root=False, name="SELECT orders", attributes={"db.system": "postgresql", "rows": 42}),
        _span(3, 0, root=True, status="ERROR", name="POST /pay",
              attributes={"http.route": "/pay", "http.response.status_code": 500, "http.request.method": "POST"}),
        _span(4, 0, root=True, service="api", name="GET /health", attributes={"http.route": "/health"}),
    ]
    with write_transaction(store.engine) as conn:
        conn.execute(spans.insert(), rows)
    return store


@pytest.mark.parametrize(("query", "expected"), [
    ("", [4, 3, 2, 1]),
    ("service=shop", [3, 2, 1]),
    ("route:/orders/{id}", [2, 1]),
    ("status>=500", [3]),
    ("status=error", [3]),
    ("error=true", [3]),
    ("error=false service=shop", [2, 1]),
    ("duration>500ms", [2]),
    ("duration<=0.1s service=shop", [3, 1]),
    ("db.system=postgresql", [2]),
    ("rows>40", [2]),
    ("-service=api method=POST", [3]),
    ("orders", [2, 1]),
    ("-health", [3, 2, 1]),
    (f"since:{T0 + 2.5}", [4, 3]),
    (f"trace_id={2:032x}", [2]),
])
def test_trace_terms(traced: Store, query: str, expected: list[int]) -> None:
    """Each term selects the traces it names, newest first, on both backends."""
    found = search_traces(traced.engine, query)["traces"]
    assert [int(t["trace_id"], 16) for t in found] == expected


def test_trace_row_and_spans(traced: Store) -> None:
    """A found trace has its route and HTTP status; get_trace returns its spans in start order."""
    (trace,) = search_traces(traced.engine, "status>=500")["traces"]
    assert (trace["route"], trace["http_status"], trace["status"]) == ("/pay", 500, "ERROR")
    assert [s["name"] for s in get_trace(traced.engine, f"{2:032x}")] == ["GET /orders/{id}", "SELECT orders"]


@pytest.mark.parametrize("query", ["status=weird", "duration>fast", "error=maybe", "service>3", "rows>many"])
def test_bad_trace_queries(traced: Store, query: str) -> None:
    """Terms that make no sense for traces are QuerySyntaxErrors."""
    with pytest.raises(QuerySyntaxError):
        search_traces(traced.engine, query)
