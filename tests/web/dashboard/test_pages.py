"""Each page rendered over the seeded store: what it shows, its filters and its form actions."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
import sqlalchemy as sa

from kansoku.store import tables as t


def csrf_of(html: str) -> str:
    """The CSRF token a page put in its forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def titles(html: str) -> list[str]:
    """Group titles linked from an errors list, in order."""
    found = re.findall(r'<td data-label="Error" class="title-cell"><a href="[^"]+">([^<]+)</a>', html)
    return [unescape(title) for title in found]


async def test_overview_shows_traffic_errors_and_notifications(client: httpx.AsyncClient) -> None:
    """The overview sums both instances' request rows and lists open, new and regressed groups."""
    response = await client.get("/", params={"range": "24h"})
    html = response.text
    assert response.status_code == 200
    assert re.search(r"Requests</span><span class=\"value\">4.8k", html)  # 120 minutes x 2 instances x 20
    assert "25 ms / 250 ms" in html  # p50 and p95 estimated from the summed buckets
    assert "0.50%" in html  # 24 of 4800 answered 5xx
    # the newest 15-minute point: 7 rows of 40 requests in the 6 min 40 s elapsed of it (a rate, not a dip)
    assert 'aria-label="Requests per minute. requests/min: latest 42, max 42"' in html
    assert html.count("<polyline") >= 3
    assert "ConnectionError: db went away" in html  # regressed
    assert "HTTP 503" not in html  # the overview lists notifications, not their errors
    assert '<a href="/kansoku/alerts#rule-critical_errors">critical_errors</a> → pager' in html


async def test_overview_links_latency_to_the_slow_traces(client: httpx.AsyncClient) -> None:
    """The latency chart links to the traces slower than the range's p95 (the traces behind a spike)."""
    html = (await client.get("/", params={"range": "24h"})).text
    assert 'href="/kansoku/traces?q=duration%3E%3D250ms%20since%3A24h">traces slower than p95</a>' in html


async def test_overview_range_changes_the_window(client: httpx.AsyncClient) -> None:
    """?range=1h draws per-minute points; an unknown range falls back to the default, fit to the data."""
    one_hour = await client.get("/", params={"range": "1h"})
    assert 'value="1h" selected' in one_hour.text
    assert "Showing last 1h." in one_hour.text
    fallback = await client.get("/", params={"range": "5y"})
    assert 'value="fit" selected' in fallback.text
    assert "Showing last 6h." in fallback.text  # the smallest range holding the seeded 2 hours


async def test_errors_list_defaults_to_unresolved_by_last_seen(client: httpx.AsyncClient) -> None:
    """The list shows unresolved groups, last seen first, 25 a page, with the counts per status."""
    html = (await client.get("/errors")).text
    shown = titles(html)
    assert len(shown) == 25
    assert shown[0] == "ConnectionError: db went away"
    assert "33 groups match." in html
    assert "Page 1 of 2" in html
    assert "KeyError" not in html  # resolved


async def test_errors_list_filters_search_sort_and_pages(client: httpx.AsyncClient) -> None:
    """Filters combine; search matches title, culprit and message; sort and pages follow the query."""
    async def shown(**params: str) -> list[str]:
        return titles((await client.get("/errors", params=params)).text)

    assert await shown(status="resolved") == ["KeyError: 'sku'"]
    assert await shown(status="", service="billing") == ["KeyError: 'sku'"]
    assert await shown(status="", category="performance") == ["TimeoutError: upstream timed out"]
    assert await shown(severity="critical") == ["RuntimeError: <script>alert(1)</script>"]
    assert await shown(environment="staging") == []  # staging's only group is resolved
    assert await shown(q="1250.5") == ["ValueError: amount over limit"]  # in the message
    assert await shown(q="filler number 0%") == []  # % is a literal, not a wildcard
    assert (await shown(sort="count"))[0] == "ValueError: amount over limit"
    assert (await shown(sort="first_seen"))[0] == "RuntimeError: <script>alert(1)</script>"
    second = await shown(page="2")
    assert len(second) == 8 and second[-1] == "LookupError: filler number 29"
    html = (await client.get("/errors", params={"q": "filler", "sort": "count"})).text
    assert 'href="/kansoku/errors?status=unresolved&amp;q=filler&amp;sort=count&amp;page=2" rel="next"' in html


async def test_errors_list_survives_garbage_parameters(client: httpx.AsyncClient) -> None:
    """Unknown statuses, sorts and pages fall back to the defaults instead of failing."""
    response = await client.get("/errors", params={"status": "x", "sort": "drop table", "page": "-4"})
    assert response.status_code == 200
    assert len(titles(response.text)) == 25


async def test_bulk_resolve_and_ignore(client: httpx.AsyncClient, engine: sa.Engine) -> None:
    """Ticked groups are resolved (or ignored) together and the list comes back with its filters."""
    page = await client.get("/errors", params={"q": "filler"})
    token = csrf_of(page.text)
    response = await client.post("/errors/bulk", data={
        "csrf_token": token, "action": "resolve", "ids": ["10", "11", "12"], "q": "filler", "status": "unresolved"})
    assert response.status_code == 303
    assert response.headers["location"] == "/kansoku/errors?status=unresolved&q=filler&done=bulk-resolve&n=3"
    followed = await client.get(response.headers["location"].removeprefix("/kansoku"))
    assert "3 group(s) resolved." in followed.text
    await client.post("/errors/bulk", data={"csrf_token": token, "action": "ignore", "ids": ["13"]})
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(t.error_groups.c.id, t.error_groups.c.status)
                                 .where(t.error_groups.c.id.in_([10, 11, 12, 13, 14]))).all())
    assert rows == {10: "resolved", 11: "resolved", 12: "resolved", 13: "ignored", 14: "unresolved"}


async def test_error_detail_shows_the_latest_event(client: httpx.AsyncClient, seeded: Any) -> None:
    """The detail page shows the group, the latest event's chain, frames, locals, request, user, tags."""
    html = (await client.get("/errors/1")).text
    assert "<h1 class=\"error-title\">ValueError: amount over limit</h1>" in html
    assert f"Event <code>{seeded.EVENT_IDS[2]}</code>" in html
    assert html.index("<strong>ValueError</strong>") < html.index("<strong>KeyError</strong>")  # raised first
    assert "Direct cause of the exception above" in html
    assert re.search(r'class="line current"><span class="ln">42</span>\s*raise ValueError', html)
    assert "<code>password</code></th><td><code>[REDACTED]</code>" in html
    assert "POST http://shop.test/orders?x=1" in html
    assert "u-17" in html and "eu-west" in html and "GET /cart" in html
    assert f'href="/kansoku/traces/{seeded.TRACE_ID}"' in html
    assert "<code>app.orders:validate</code>" in html  # why grouped
    assert "42 <small>(3 stored)</small>" in html
    assert re.search(r'<span class="bar-label">pro</span> <meter min="0" max="3" value="2">', html)
    assert f'href="/kansoku/errors/1?event={seeded.EVENT_IDS[1]}" rel="prev"' in html
    assert 'class="disabled">Newer' in html


async def test_error_detail_by_event_id_and_navigation(client: httpx.AsyncClient, seeded: Any) -> None:
    """/errors/<event id> (the alert's link) opens that event; ?event= moves between events."""
    html = (await client.get(f"/errors/{seeded.EVENT_IDS[0]}")).text
    assert f"Event <code>{seeded.EVENT_IDS[0]}</code>" in html
    assert 'class="disabled">← Older' in html
    assert f'href="/kansoku/errors/1?event={seeded.EVENT_IDS[1]}" rel="next"' in html
    middle = (await client.get("/errors/1", params={"event": seeded.EVENT_IDS[1]})).text
    assert f"Event <code>{seeded.EVENT_IDS[1]}</code>" in middle
    missing = await client.get("/errors/999")
    assert missing.status_code == 404
    unknown_event = await client.get("/errors/1", params={"event": "nope"})
    assert f"Event <code>{seeded.EVENT_IDS[2]}</code>" in unknown_event.text


async def test_resolve_ignore_reopen_from_the_detail_page(client: httpx.AsyncClient, engine: sa.Engine) -> None:
    """Each button changes the status, shows a message, and offers the opposite action."""
    token = csrf_of((await client.get("/errors/1")).text)
    query = sa.select(t.error_groups.c.status, t.error_groups.c.resolved_at).where(t.error_groups.c.id == 1)
    for action, status, offered in (("resolve", "resolved", "Reopen"), ("ignore", "ignored", "Reopen"),
                                    ("reopen", "unresolved", "Resolve")):
        response = await client.post(f"/errors/1/{action}", data={"csrf_token": token}, follow_redirects=True)
        assert response.status_code == 200
        assert f'<span class="badge st-{status}">{status}</span>' in response.text
        assert f">{offered}</button>" in response.text
        with engine.connect() as conn:
            assert conn.execute(query).one()[0] == status
    unknown = await client.post("/errors/1/delete", data={"csrf_token": token})
    assert unknown.status_code == 404


async def test_hostile_text_is_escaped(client: httpx.AsyncClient, seeded: Any) -> None:
    """Markup in titles, culprits, messages and tags is escaped on every page that shows it."""
    for path in ("/", "/errors?severity=critical", "/errors/2"):
        html = (await client.get(path)).text
        assert seeded.XSS_SCRIPT not in html, path
        assert "<img" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    detail = (await client.get("/errors/2")).text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in detail


async def test_traces_list_and_waterfall(client: httpx.AsyncClient, seeded: Any) -> None:
    """Traces lists slowest and recent roots; a trace shows its spans as a tree with its errors."""
    html = (await client.get("/traces")).text
    assert html.index("POST /orders") < html.index("GET /health-check")  # slowest first
    trace = (await client.get(f"/traces/{seeded.TRACE_ID}")).text
    names = re.findall(r'<span class="span-name">([^<]+)</span>', trace)
    assert names == ["POST /orders", "SELECT orders", "create_order", "POST payments"]
    depths = re.findall(r'class="span-row depth-(\d+)', trace)
    assert depths == ["0", "1", "1", "2"]
    assert 'x="0.0" y="0" width="1000.0"' in trace  # the root spans the whole trace
    assert "SELECT * FROM orders WHERE id = ?" in trace
    assert trace.count("/errors/1?event=") == 3
    jump = await client.get("/traces", params={"trace_id": seeded.TRACE_ID.upper()})
    assert jump.status_code == 303 and jump.headers["location"] == f"/kansoku/traces/{seeded.TRACE_ID}"
    bad = await client.get("/traces", params={"trace_id": "xyz"})
    assert "A trace id is 32 hexadecimal digits." in bad.text
    assert (await client.get("/traces/" + "0" * 32)).status_code == 404
    assert (await client.get("/traces/not-hex")).status_code == 404


async def test_performance_is_sortable(client: httpx.AsyncClient) -> None:
    """The function summary sorts by any column, both ways; the memory report is shown."""
    def order(html: str) -> list[str]:
        return re.findall(r'<td data-label="Function"><code>([^<]+)</code>', html)

    by_total = (await client.get("/performance")).text
    assert order(by_total) == ["app.orders.create_order", "app.cart.total"]
    assert "222 ms" in by_total  # total of 10 + 12 + 200 ms
    ascending = (await client.get("/performance", params={"sort": "count", "dir": "asc"})).text
    assert order(ascending) == ["app.cart.total", "app.orders.create_order"]
    assert 'aria-sort="ascending"' in ascending
    assert "Tracked objects</h3>" in by_total and "Resident memory (RSS)" in by_total


async def test_performance_without_debugger(make_app: Any, seeded: Any) -> None:
    """The standalone dashboard (no debugger) says where to look instead."""
    async with seeded.asgi_client(make_app(debugger=False)) as client:
        html = (await client.get("/performance")).text
    assert "this standalone dashboard has no access to it" in html


async def test_alerts_page_masks_secrets(client: httpx.AsyncClient) -> None:
    """Rules and channels are listed; secrets and webhook URL paths never reach the page."""
    html = (await client.get("/alerts")).text
    assert "critical_errors" in html
    assert "https://hooks.example.com/***" in html
    for secret in ("webhook-signing-secret", "XYZSECRET", "sig=abc", "/services/"):
        assert secret not in html
    assert "HTTP 503 from events.pagerduty.com" in html
    assert "deploy window" in html


async def test_silence_add_and_expire(client: httpx.AsyncClient, engine: sa.Engine) -> None:
    """A silence needs a matcher; once added it is listed, and expiring it ends it now."""
    token = csrf_of((await client.get("/alerts")).text)
    empty = await client.post("/alerts/silences", data={"csrf_token": token, "minutes": "60"})
    assert empty.headers["location"].startswith("/kansoku/alerts?done=silence-invalid")
    added = await client.post("/alerts/silences", data={"csrf_token": token, "group_key": "g2", "minutes": "240",
                                                       "comment": "known issue"}, follow_redirects=True)
    assert "Silence added." in added.text and "known issue" in added.text
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.silences).where(t.silences.c.group_key == "g2")).mappings().one()
    assert row["ends_at"] - row["created_at"] == 240 * 60
    assert row["created_by"] == "dashboard (loopback)"
    expired = await client.post(f"/alerts/silences/{row['id']}/expire", data={"csrf_token": token},
                                follow_redirects=True)
    assert "Silence expired." in expired.text
    with engine.connect() as conn:
        ends = conn.execute(sa.select(t.silences.c.ends_at).where(t.silences.c.id == row["id"])).scalar()
    assert ends <= row["created_at"] + 1


async def test_silence_form_is_prefilled_from_the_detail_link(client: httpx.AsyncClient) -> None:
    """"Silence alerts" on an error links to the form with the group key filled in."""
    detail = (await client.get("/errors/1")).text
    link = re.search(r'href="(/kansoku/alerts\?group_key=[^"]+)#silence"', detail)
    assert link
    html = (await client.get(link.group(1).removeprefix("/kansoku").replace("&amp;", "&"))).text
    assert re.search(r'id="s-group" name="group_key" value="[0-9a-f]+1"', html)


async def test_retry_a_dead_notification(client: httpx.AsyncClient, engine: sa.Engine) -> None:
    """Retry puts a dead notification back in the queue; a second retry has nothing to do."""
    token = csrf_of((await client.get("/alerts", params={"status": "dead"})).text)
    first = await client.post("/alerts/deliveries/2/retry", data={"csrf_token": token})
    assert first.headers["location"] == "/kansoku/alerts?done=retry"
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.outbox.c.status, t.outbox.c.attempts).where(t.outbox.c.id == 2)).one()
    assert tuple(row) == ("pending", 0)
    again = await client.post("/alerts/deliveries/2/retry", data={"csrf_token": token})
    assert again.headers["location"] == "/kansoku/alerts?done=retry-none"


async def test_settings_page_masks_the_token(make_app: Any, seeded: Any) -> None:
    """Settings lists the effective configuration with secrets, URL passwords and webhook paths masked."""
    app = make_app(dashboard_token=seeded.TOKEN, database_url="postgresql+psycopg://kansoku:pg-pass-77@db/k")
    async with seeded.asgi_client(app, headers={"authorization": f"Bearer {seeded.TOKEN}"}) as client:
        html = (await client.get("/settings")).text
    assert seeded.TOKEN not in html
    assert "<code>dashboard_token</code></th><td>***</td>" in html
    for secret in ("webhook-signing-secret", "XYZSECRET", "/services/", "sig=abc", "pg-pass-77"):
        assert secret not in html
    assert "postgresql+psycopg://kansoku:[REDACTED]@db/k" in html


async def test_dashboard_without_store(tmp_path: Any, seeded: Any) -> None:
    """With no engine the data pages say so (503) and settings still work."""
    from kansoku.web.app import build_web_app

    app = build_web_app(seeded.make_runtime(seeded.make_settings(tmp_path), None))
    async with seeded.asgi_client(app) as client:
        assert (await client.get("/errors")).status_code == 503
        assert "no store configured" in (await client.get("/")).text
        assert (await client.get("/settings")).status_code == 200
