"""A fuzzer over every route of kansoku's web app (API, dashboard, Slack, login): no answer is a 5xx.

For `KANSOKU_FUZZ_SECONDS` (60 by default) it sends random requests: each route's path with its
parameters filled with hostile values (huge, negative and non-numeric ids, traversal, markup,
control characters, long strings), random methods, query parameters with out-of-range and
ill-typed values, and random bodies (broken JSON, JSON of the wrong shape, forms, bytes) under
random content types; as a bearer client, a browser with and without CSRF tokens, an anonymous
client, and a remote one. Every 5xx is collected with the request that caused it.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from starlette.routing import BaseRoute, Mount, Route

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("KANSOKU_FUZZ_SECONDS", "60"))
VALUES = ["0", "1", "-1", "2", "68", "9" * 20, "18446744073709551616", "abc", "1e9", "NaN", "", " ", "..",
          "../../etc/passwd", "%00", "<script>alert(1)</script>", "' OR 1=1 --", "\u2603", "x" * 5000,
          "e1" + "0" * 30, "null", "true", "[]", "{}", "%ff", "\\", "-0", "0x10", "１２３"]
PARAMS = ["limit", "offset", "hours", "status", "severity", "category", "q", "page", "range", "all", "next",
          "group_key", "rule", "channel", "service", "since", "until", "sort", "done", "id", "text"]
BODY_KEYS = [*PARAMS, "duration_minutes", "ends_at", "minutes", "comment", "ids", "action", "csrf_token", "token",
             "payload"]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
                 "application/json; charset=latin-1", ""]


def _templates(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for route in routes:
        if isinstance(route, Route):
            found.append((prefix + route.path, sorted(route.methods or {"GET"})))
        elif isinstance(route, Mount):
            found += _templates(list(route.routes), prefix + route.path)
    return found


def _fill(template: str, rng: random.Random) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: quote(rng.choice(VALUES), safe=""), template)


def _body(rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return b""
    if choice == 1:
        return rng.choice([b"{", b"[1,", b"\xff\xfe", b"null", b'"x"', b"1e999", b'{"a":' * 200])
    if choice == 2:
        value = {rng.choice(BODY_KEYS): rng.choice([*VALUES, None, -5, 1e308])
                 for _ in range(rng.randrange(1, 5))}
        return json.dumps(value).encode()
    if choice == 3:
        return "&".join(f"{rng.choice([*PARAMS, 'ids', 'csrf_token', 'payload'])}={quote(rng.choice(VALUES))}"
                        for _ in range(rng.randrange(1, 5))).encode()
    if choice == 4:
        return json.dumps(rng.choice([[], [1, 2], "text", 12, {"rule": {"x": 1}}])).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))


async def test_fuzzing_every_route_gives_no_5xx(make_app: Any, seeded: Any) -> None:
    """SECONDS of random requests against every route, in both auth modes: zero 5xx answers."""
    rng = random.Random(14)
    token_app, loopback_app = make_app(dashboard_token=seeded.TOKEN), make_app()
    templates = [*_templates(list(token_app.app.routes)), ("/login", ["GET", "POST"]), ("/logout", ["POST"])]
    assert len(templates) >= 25
    failures: list[str] = []
    sent = 0
    clients = [seeded.asgi_client(token_app, headers={"Authorization": f"Bearer {seeded.TOKEN}"}),
               seeded.asgi_client(token_app), seeded.asgi_client(loopback_app),
               seeded.asgi_client(loopback_app, host="203.0.113.5")]
    for client in clients:
        await client.__aenter__()
        client._transport.raise_app_exceptions = False  # type: ignore[attr-defined] - a 500, not a raise
    try:
        page = await clients[2].get("/errors")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            template, methods = rng.choice(templates)
            method = rng.choice([*methods, *methods, "PUT", "DELETE", "PATCH"])
            query = "&".join(f"{rng.choice(PARAMS)}={quote(rng.choice(VALUES))}" for _ in range(rng.randrange(3)))
            url = _fill(template, rng) + ("?" + query if query else "")
            headers = {"content-type": rng.choice(CONTENT_TYPES)}
            if csrf is not None and rng.random() < 0.5:
                headers["x-csrf-token"] = csrf.group(1)
            client = rng.choice(clients)
            response = await client.request(method, url, content=_body(rng) if method != "GET" else None,
                                            headers=headers)
            sent += 1
            if response.status_code >= 500:
                failures.append(f"{method} {url[:200]} -> {response.status_code} {response.text[:200]}")
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    print(f"fuzz: {sent} requests over {len(templates)} routes in {SECONDS:.0f} s, {len(failures)} 5xx")
    assert sent > 100
    assert failures == []
