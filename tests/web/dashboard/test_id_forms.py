"""The dashboard and the JSON API read through one query layer: an id means the same on both."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from kansoku.store import tables as t

NUMERIC_KEY = "12345678901"  # a group key that looks like a group id no group has
NUMERIC_EVENT = "4242"  # an event id that looks like a group id no group has
LONG_NUMBER = "0" * 19 + "7"


def _add_groups(engine: sa.Engine, seeded: Any) -> None:
    """Groups whose keys and event ids look like numbers, and one whose key is another group's id."""
    base = {"fingerprint_parts": [], "culprit": "app.x", "exception_type": "ValueError", "message": "",
            "severity": "low", "category": "application", "service": "shop", "environment": "production",
            "status": "unresolved", "first_seen": seeded.NOW - 60, "last_seen": seeded.NOW - 60, "count": 1,
            "users_affected": 0, "regressed": False}
    groups = [{**base, "id": 50, "group_key": NUMERIC_KEY, "title": "numeric key"},
              {**base, "id": 51, "group_key": "3", "title": "key that is another group's id"},
              {**base, "id": 52, "group_key": LONG_NUMBER, "title": "long numeric key"}]
    event = {"event_id": NUMERIC_EVENT, "group_id": 2, "timestamp": seeded.NOW - 30, "severity": "critical",
             "category": "security", "data": {"event_id": NUMERIC_EVENT}}
    with engine.begin() as conn:
        conn.execute(t.error_groups.insert(), groups)
        conn.execute(t.error_events.insert(), [event])


async def _api_group(client: httpx.AsyncClient, ident: str) -> int | None:
    response = await client.get(f"/api/errors/{quote(ident, safe='')}", params={"events": 0})
    if response.status_code in (404, 422):
        return None
    assert response.status_code == 200, (ident, response.status_code)
    return int(response.json()["id"])


async def _page_group(client: httpx.AsyncClient, ident: str) -> int | None:
    response = await client.get(f"/errors/{quote(ident, safe='')}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, (ident, response.status_code)
    match = re.search(r"/ group (\d+)</nav>", response.text)
    assert match, ident
    return int(match.group(1))


async def _search(client: httpx.AsyncClient, text: str) -> tuple[set[int], set[int]]:
    api = (await client.get("/api/errors", params={"q": text, "limit": 200})).json()["items"]
    page = (await client.get("/errors", params={"q": text, "status": ""})).text
    listed = re.findall(r'class="title-cell"><a href="/kansoku/errors/(\d+)">', page)
    return {int(g["id"]) for g in api}, {int(i) for i in listed}


async def test_dashboard_and_api_agree_on_every_id_form(
    client: httpx.AsyncClient, engine: sa.Engine, seeded: Any
) -> None:
    """Group id, event id, group key, numbers that are not ids, junk: the page and the API name one group."""
    _add_groups(engine, seeded)
    with engine.connect() as conn:
        key_of_1 = conn.execute(sa.select(t.error_groups.c.group_key).where(t.error_groups.c.id == 1)).scalar_one()
    expected = {
        "1": 1, key_of_1: 1, seeded.EVENT_IDS[0]: 1, "x" * 32: 2,
        NUMERIC_KEY: 50, NUMERIC_EVENT: 2, "3": 3, LONG_NUMBER: 52,
        "999": None, "²": None, "１": None, "nope": None,
    }
    found = {ident: (await _api_group(client, ident), await _page_group(client, ident)) for ident in expected}
    assert found == {ident: (group, group) for ident, group in expected.items()}
    for text in (seeded.EVENT_IDS[0], key_of_1, NUMERIC_KEY, "over limit"):
        api, page = await _search(client, text)
        assert api == page and api, text


async def test_event_id_link_shows_that_event(client: httpx.AsyncClient, seeded: Any) -> None:
    """/errors/<event id> (the link an alert carries) shows that event, not the group's latest."""
    html = (await client.get(f"/errors/{seeded.EVENT_IDS[0]}")).text
    assert f"/errors/1?event={seeded.EVENT_IDS[1]}\" rel=\"next\"" in html
    assert "rel=\"prev\"" not in html
