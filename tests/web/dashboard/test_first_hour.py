"""What a newcomer reads on a fresh store: statuses, unmatched requests, releases, suppression, deliveries."""

from __future__ import annotations

import re
from typing import Any

import httpx
import sqlalchemy as sa

from kansoku.store import tables as t


def _root(trace_id: str, name: str, start: float, attributes: dict[str, Any], status: str = "UNSET") -> dict[str, Any]:
    return {"span_id": trace_id[:16], "trace_id": trace_id, "parent_id": None, "name": name, "kind": "SERVER",
            "service": "shop", "start_time": start, "end_time": start + 0.002, "duration_ms": 2.0,
            "status": status, "status_message": None, "attributes": attributes, "events": [], "is_root": True}


async def test_spans_show_ok_not_unset_and_unmatched_requests_their_path(
        client: httpx.AsyncClient, engine: sa.Engine, seeded: Any) -> None:
    """A span with no error reads 'ok' (never OTel's raw UNSET); a request that matched no route is
    listed by its path, 'GET (no route) /missing', in the list and in its waterfall."""
    with engine.begin() as conn:
        conn.execute(t.spans.insert(), [
            _root("1" * 32, "GET", seeded.NOW - 20, {"url.path": "/missing", "http.response.status_code": 404}),
            _root("2" * 32, "GET /orders/{order_id}", seeded.NOW - 10,
                  {"url.path": "/orders/7", "http.route": "/orders/{order_id}", "http.response.status_code": 200}),
        ])
    listing = (await client.get("/traces")).text
    assert "unset" not in listing.lower()
    assert "GET (no route) /missing</a>" in listing
    assert "GET /orders/{order_id}</a>" in listing  # a matched route is named by its template alone
    assert re.search(r'st-ok">ok</span> <small>HTTP 404</small>', listing)
    assert re.search(r'st-error">error</span>', listing)  # the seeded failed POST /orders
    trace = (await client.get(f"/traces/{'1' * 32}")).text
    assert '<span class="span-name">GET (no route) /missing</span>' in trace


async def test_a_group_without_releases_says_how_to_set_one(client: httpx.AsyncClient, engine: sa.Engine) -> None:
    """A group with no release says so plainly and names KANSOKU_VERSION (no 'Releases, dash to dash')."""
    with engine.begin() as conn:
        conn.execute(t.error_groups.update().where(t.error_groups.c.id == 1).values(
            first_release=None, last_release=None))
    html = (await client.get("/errors/1")).text
    assert "– → –" not in html
    assert "no release: set <code>KANSOKU_VERSION</code>" in html
    assert "1.0.0 → 1.2.0" in (await client.get("/errors/3")).text  # releases set: shown as before


async def test_rule_times_read_as_people_say_them(make_app: Any, seeded: Any) -> None:
    """Suppression and windows read '30 s', '1 h 30 min', 'none: every alert is sent', never '0.0 min'."""
    rules = [
        {"name": "no_pause", "kind": "first_seen", "suppression_minutes": 0, "channels": ["ops"]},
        {"name": "half_minute", "suppression_minutes": 0.5, "time_window_minutes": 90, "channels": ["ops"]},
    ]
    alerts = {"channels": [{"name": "ops", "type": "webhook", "url": "https://hooks.example.com/x"}], "rules": rules}
    async with seeded.asgi_client(make_app(alerts=alerts)) as c:
        html = (await c.get("/alerts")).text
    assert "0.0 min" not in html and "0.5 min" not in html
    assert "none: every alert is sent" in html
    assert "30 s between alerts" in html
    assert "1 in 1 h 30 min" in html
    assert 'id="rule-half_minute"' in html  # the target of the delivery rows' links


async def test_delivery_rows_name_the_rule_and_the_group_with_links(
        client: httpx.AsyncClient, engine: sa.Engine, seeded: Any) -> None:
    """Each notification links the rule that fired it and the error group it is about (or its monitor)."""
    item = {"group_key": "abc", "group_id": 1, "title": "ValueError: amount over limit"}
    with engine.begin() as conn:
        conn.execute(t.outbox.insert(), [
            {"id": 3, "created_at": seeded.NOW - 30, "channel": "ops", "rule": "critical_errors", "group_key": "abc",
             "kind": "trigger", "idempotency_key": "k3", "payload": {"rule": {"name": "critical_errors"}, "item": item},
             "status": "sent", "attempts": 1, "next_attempt_at": seeded.NOW - 30, "sent_at": seeded.NOW - 29,
             "last_error": None},
            {"id": 4, "created_at": seeded.NOW - 20, "channel": "ops", "rule": "monitor_missed",
             "group_key": "monitor:nightly", "kind": "trigger", "idempotency_key": "k4",
             "payload": {"item": {"group_key": "monitor:nightly", "group_id": None, "title": "nightly missed a run"}},
             "status": "sent", "attempts": 1, "next_attempt_at": seeded.NOW - 20, "sent_at": seeded.NOW - 19,
             "last_error": None},
        ])
    expected = ('<a href="/kansoku/alerts#rule-critical_errors">critical_errors</a> → ops: '
                '<a href="/kansoku/errors/1">ValueError: amount over limit</a>')
    monitor = '→ ops: <a href="/kansoku/monitors">nightly missed a run</a>'
    for page in ("/alerts", "/"):
        html = (await client.get(page)).text
        assert expected in html, page
        assert monitor in html, page


def _polyline_points(html: str, title: str) -> list[tuple[float, float]]:
    chart = html.split(f"<title>{title}", 1)[1].split("</svg>", 1)[0]
    found = re.search(r'<polyline class="s-1" fill="none" points="([^"]+)"', chart)
    assert found, f"no line in the {title} chart"
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in found.group(1).split())]


async def test_the_default_range_fits_a_young_store(client: httpx.AsyncClient, engine: sa.Engine, seeded: Any) -> None:
    """With 5 minutes of data the overview shows those 5 minutes across the charts' whole width (a
    day's range made them a dot at the right edge); the p95 link searches the same 5 minutes."""
    now_minute = int(seeded.NOW // 60)
    with engine.begin() as conn:
        conn.execute(t.request_stats.delete().where(t.request_stats.c.minute < now_minute - 4))
    html = (await client.get("/")).text
    assert 'value="fit" selected' in html
    assert "Showing the last 5 min (since the first request)." in html
    line = _polyline_points(html, "Requests per minute")
    assert len(line) == 5
    assert (line[0][0], line[-1][0]) == (52.0, 632.0)  # from the left axis to the right edge
    assert "since%3A5m" in html
    day = _polyline_points((await client.get("/", params={"range": "24h"})).text, "Requests per minute")
    baseline = day[0][1]  # a day's range: zero for 23 h 55 min, then the same data squeezed at the right edge
    assert min(x for x, y in day if y != baseline) > 600


async def test_the_default_range_of_an_empty_store_is_the_last_hour(client: httpx.AsyncClient,
                                                                    engine: sa.Engine) -> None:
    """No requests stored yet: the default shows the last hour, and nothing in it."""
    with engine.begin() as conn:
        conn.execute(t.request_stats.delete())
    html = (await client.get("/")).text
    assert "Showing last 1h." in html
    assert "requests/min: latest 0, max 0" in html
