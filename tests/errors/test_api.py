"""The error API: list with filters and pages, statistics, one group, state changes, 422 and 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from starlette.applications import Starlette

from kansoku.store import Store, queries
from kansoku.store.writer import EventWriter
from kansoku.typing import ErrorEvent
from kansoku.web.api_errors import routes

NOW = 1_800_000_000.0
KEYS = {"pay": "a" * 64, "db": "b" * 64, "auth": "c" * 64}


def _event(n: int, key: str, ts: float, **fields: Any) -> ErrorEvent:
    event = ErrorEvent(
        event_id=f"{n:032x}", timestamp=ts, exception_type="ValueError", message=f"{key[0]} failed",
        title=f"ValueError: {key[0]} failed", group_key=key, fingerprint_parts=[f"custom:{key[0]}"],
        severity="low", category="application", service="shop", environment="prod",
    )
    event.update(fields)  # type: ignore[typeddict-item]
    return event


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """An API client over three groups: pay (3 events, high), db (2, database), auth (1, critical)."""
    EventWriter(store.engine).write([
        _event(1, KEYS["pay"], NOW - 7200, severity="high", category="business_logic"),
        _event(2, KEYS["pay"], NOW - 60, severity="high", category="business_logic"),
        _event(3, KEYS["pay"], NOW - 30, severity="high", category="business_logic"),
        _event(4, KEYS["db"], NOW - 40 * 3600, category="database", message="db timeout 42"),
        _event(5, KEYS["db"], NOW - 10, category="database", service="billing"),
        _event(6, KEYS["auth"], NOW - 5, severity="critical", category="security", environment="staging"),
    ])
    app = Starlette(routes=routes(store.engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_list_filters_sorts_and_pages(client: httpx.AsyncClient) -> None:
    """Filters (status, severity, category, environment, text) combine; sort and pages are stable."""
    async def titles(**params: Any) -> list[str]:
        response = await client.get("/api/errors", params=params)
        assert response.status_code == 200, response.text
        return [g["group_key"][0] for g in response.json()["items"]]

    assert await titles(sort="count") == ["a", "b", "c"]
    assert await titles(sort="first_seen", order="asc") == ["b", "a", "c"]
    assert await titles(severity="high,critical") == ["c", "a"]
    assert await titles(category="database") == ["b"]
    assert await titles(environment="staging") == ["c"]
    assert await titles(q="A FAIL") == ["a"]
    assert await titles(q="%") == []  # LIKE wildcards are escaped
    page = (await client.get("/api/errors", params={"sort": "count", "limit": 1, "offset": 1})).json()
    assert ([g["group_key"][0] for g in page["items"]], page["total"], page["limit"], page["offset"]) == (
        ["b"], 3, 1, 1)


async def test_show_by_group_id_event_id_or_key(client: httpx.AsyncClient) -> None:
    """One group with its recent events, newest first, found by any of its ids; 404 for none."""
    by_event = (await client.get(f"/api/errors/{1:032x}")).json()
    by_id = (await client.get(f"/api/errors/{by_event['id']}", params={"events": 2})).json()
    by_key = (await client.get(f"/api/errors/{KEYS['pay']}")).json()
    assert by_event["id"] == by_id["id"] == by_key["id"]
    assert [e["event_id"] for e in by_id["events"]] == [f"{3:032x}", f"{2:032x}"]
    assert (by_event["count"], by_event["stored_events"]) == (3, 3)
    missing = await client.get("/api/errors/12345")
    assert (missing.status_code, missing.json()["error"]) == (404, "not found")


async def test_resolve_ignore_reopen(client: httpx.AsyncClient) -> None:
    """POST resolve (with a release), ignore and reopen change the group's status; 404 for none."""
    resolved = await client.post(f"/api/errors/{1:032x}/resolve", json={"release": "1.4.2"})
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_in_release"]) == ("resolved", "1.4.2")
    assert (await client.post(f"/api/errors/{KEYS['pay']}/ignore")).json()["status"] == "ignored"
    reopened = (await client.post(f"/api/errors/{KEYS['pay']}/reopen")).json()
    assert (reopened["status"], reopened["resolved_in_release"]) == ("unresolved", None)
    assert (await client.post("/api/errors/nope/resolve")).status_code == 404
    listed = (await client.get("/api/errors", params={"status": "unresolved"})).json()
    assert listed["total"] == 3


async def test_statistics(client: httpx.AsyncClient, store: Store) -> None:
    """The chapter's statistics, over the last N hours, in SQL."""
    stats = queries.statistics(store.engine, hours=24, now=NOW)
    assert {k: v for k, v in stats.items() if k != "most_frequent_errors"} == {
        "total_errors": 5, "unique_errors": 3, "time_period_hours": 24,
        "since": (int(NOW // 3600) - 23) * 3600.0,
        "category_breakdown": {"business_logic": 3, "database": 1, "security": 1},
        "severity_breakdown": {"high": 3, "low": 1, "critical": 1},
    }
    assert [(e["fingerprint"][0], e["count"], e["total_count"]) for e in stats["most_frequent_errors"]] == [
        ("a", 3, 3), ("b", 1, 2), ("c", 1, 1)]
    response = await client.get("/api/errors/statistics", params={"hours": 1})
    assert response.status_code == 200 and response.json()["time_period_hours"] == 1


@pytest.mark.parametrize(("method", "path", "params", "reason"), [
    ("GET", "/api/errors", {"limit": "0"}, "limit=0 must be between 1 and 200"),
    ("GET", "/api/errors", {"limit": "many"}, "limit='many' is not a whole number"),
    ("GET", "/api/errors", {"offset": "-1"}, "offset=-1 must be between 0"),
    ("GET", "/api/errors", {"sort": "title"}, "sort='title' is not one of last_seen, count, first_seen"),
    ("GET", "/api/errors", {"order": "up"}, "order='up' is not one of asc, desc"),
    ("GET", "/api/errors", {"status": "open"}, "status='open' is not one of unresolved, resolved, ignored"),
    ("GET", "/api/errors", {"severity": "huge"}, "severity='huge' is not one of"),
    ("GET", "/api/errors", {"q": "x" * 300}, "q is longer than 200 characters"),
    ("GET", "/api/errors/statistics", {"hours": "0"}, "hours=0 must be between 1 and 8784"),
    ("GET", "/api/errors/statistics", {"hours": "1e3"}, "hours='1e3' is not a whole number"),
    ("GET", "/api/errors/a.b", {}, "the id must be a group id, an event id or a group key"),
    ("GET", f"/api/errors/{1:032x}", {"events": "1000"}, "events=1000 must be between 0 and 200"),
])
async def test_bad_parameters_are_422_with_the_reason(client: httpx.AsyncClient, method: str, path: str,
                                                      params: dict[str, str], reason: str) -> None:
    """Every bad parameter gets 422 and a reason that names it, never a 500."""
    response = await client.request(method, path, params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid parameter" and reason in response.json()["detail"]


async def test_bad_body_is_422(client: httpx.AsyncClient) -> None:
    """A resolve body that is not a JSON object with a string release is a 422."""
    for body in (b"{", b"[1]", b'{"release": 5}'):
        response = await client.post(f"/api/errors/{1:032x}/resolve", content=body)
        assert response.status_code == 422, body


async def test_unreachable_store_is_503(tmp_path: Path) -> None:
    """A store that cannot be opened answers 503 with the reason, not 500."""
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/k.db")
    app = Starlette(routes=routes(engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/api/errors")
    assert response.status_code == 503 and response.json()["error"] == "store unavailable"
