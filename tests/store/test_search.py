"""Log search on SQLite and PostgreSQL: every kind of term, paging, the tail, time ranges, bad queries."""

from __future__ import annotations

from typing import Any

import pytest

from kansoku.store import Store
from kansoku.store.logs import BLOCK_ROWS, write_logs
from kansoku.store.query_syntax import QuerySyntaxError
from kansoku.store.search import search_logs

from .conftest import T0


def _lines(n: int) -> list[dict[str, Any]]:
    """n lines: every 7th a payment failure, every 10th a warning, services alternating."""
    return [{
        "timestamp": T0 + i, "level": "warning" if i % 10 == 0 else "info", "logger": "shop.pay",
        "message": "Payment failed: card declined" if i % 7 == 0 else f"order-{i} created",
        "service": "shop" if i % 2 else "api", "request_id": f"req-{i}", "trace_id": f"{i:032x}",
        "attributes": {"order_id": i, "duration_ms": float(i), "route": "/orders/{id}", "user": {"id": i % 3},
                       "paid": i % 2 == 0},
    } for i in range(1, n + 1)]


@pytest.fixture
def filled(store: Store) -> Store:
    """A store with 300 lines written in three batches (so SQLite has several index blocks)."""
    lines = _lines(300)
    for start in range(0, 300, 100):
        write_logs(store.engine, lines[start:start + 100])
    return store


def _ids(store: Store, query: str, **options: Any) -> list[int]:
    return [line["attributes"]["order_id"] for line in search_logs(store.engine, query, **options)["lines"]]


@pytest.mark.parametrize(("query", "expected"), [
    ("order_id=150", [150]),
    ('order_id="150"', [150]),
    ("order_id=150.0", [150]),
    ("request_id=REQ-150", [150]),
    ("route:/orders/{id} order_id=3", [3]),
    ("user.id=2 order_id<=12", [11, 8, 5, 2]),
    ("paid=true order_id<5", [4, 2]),
    ("level>=warning order_id<=40", [40, 30, 20, 10]),
    ("level=warning service=api order_id<=40", [40, 30, 20, 10]),
    ('"payment failed" order_id<30', [28, 21, 14, 7]),
    ("PAYMENT declined order_id<15", [14, 7]),
    ('"failed payment" order_id<30', []),
    ("pay* order_id<15", [14, 7]),
    ("payment -service=api order_id<30", [21, 7]),
    ("-payment order_id<5", [4, 3, 2, 1]),
    ("order-5", [5]),
    ("duration>295ms", [300, 299, 298, 297, 296]),
    ("duration>=0.299s", [300, 299]),
    ("trace_id=" + f"{77:032x}", [77]),
    ("message=\"card declined\" order_id<10", [7]),
    ("nosuchword", []),
    ("order_id=99999", []),
])
def test_terms(filled: Store, query: str, expected: list[int]) -> None:
    """Each kind of term selects exactly the lines it names, newest first, on both backends."""
    assert _ids(filled, query, limit=50) == expected


def test_paging_and_tail(filled: Store) -> None:
    """Pages go older through next_before without gaps or repeats; after= returns only newer lines."""
    seen: list[int] = []
    before = None
    while True:
        page = search_logs(filled.engine, "payment", limit=9, before=before)
        seen += [line["attributes"]["order_id"] for line in page["lines"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == list(range(294, 0, -7))
    newest = search_logs(filled.engine, "", limit=1)["lines"][0]["id"]
    write_logs(filled.engine, _lines(BLOCK_ROWS + 3)[-2:])
    tail = search_logs(filled.engine, "", after=newest)["lines"]
    assert [line["attributes"]["order_id"] for line in tail] == [BLOCK_ROWS + 3, BLOCK_ROWS + 2]


def test_time_range(filled: Store) -> None:
    """since:/until: bound the lines by their time."""
    assert _ids(filled, "until:" + str(T0 + 3)) == [3, 2, 1]
    assert _ids(filled, f"since:{T0 + 298} order_id>0") == [300, 299, 298]


def test_line_shape(filled: Store) -> None:
    """A line has its id, ISO time, level name, columns and attributes."""
    (line,) = search_logs(filled.engine, "order_id=10")["lines"]
    assert {k: v for k, v in line.items() if k != "id"} == {
        "timestamp": T0 + 10, "time": "2027-01-15T08:00:10.000Z", "level": "warning", "logger": "shop.pay",
        "message": "order-10 created", "service": "api", "environment": "", "version": None,
        "request_id": "req-10", "trace_id": f"{10:032x}", "span_id": None, "project": None,
        "attributes": {"order_id": 10, "duration_ms": 10.0, "route": "/orders/{id}", "user": {"id": 1},
                       "paid": True}}


@pytest.mark.parametrize("query", ["level>=loud", "duration>fast", "message>3", '"open'])
def test_bad_queries(filled: Store, query: str) -> None:
    """A bad query is a QuerySyntaxError (ValueError) naming the problem, never a database error."""
    with pytest.raises(QuerySyntaxError):
        search_logs(filled.engine, query)


def test_bad_limit(filled: Store) -> None:
    """The limit is bounded."""
    with pytest.raises(ValueError, match="limit"):
        search_logs(filled.engine, "", limit=0)
