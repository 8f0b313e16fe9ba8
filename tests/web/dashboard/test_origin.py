"""State changes must come from kansoku's own origin: Sec-Fetch-Site and Origin, in both modes."""

from __future__ import annotations

from typing import Any

import pytest

from kansoku.web.auth import cross_origin


def _scope(**headers: str) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize(("headers", "refused"), [
    ({"host": "127.0.0.1:8000"}, False),  # a script: no browser headers
    ({"host": "127.0.0.1:8000", "sec_fetch_site": "same-origin", "origin": "http://127.0.0.1:8000"}, False),
    ({"host": "127.0.0.1:8000", "sec_fetch_site": "none"}, False),
    ({"host": "shop.example", "origin": "https://shop.example:443"}, False),
    ({"host": "127.0.0.1:8000", "sec_fetch_site": "same-site", "origin": "http://127.0.0.1:9999"}, True),
    ({"host": "127.0.0.1:8000", "sec_fetch_site": "cross-site"}, True),
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9999"}, True),
    ({"host": "127.0.0.1:8000", "origin": "null"}, True),
    ({"origin": "http://127.0.0.1:8000"}, True),  # no Host to compare with
])
def test_cross_origin_judges_the_browser_headers(headers: dict[str, str], refused: bool) -> None:
    """Only same-origin (or user-made) requests pass; another port of the same host is refused."""
    assert (cross_origin(_scope(**headers)) is not None) is refused


@pytest.mark.parametrize("mode", ["loopback", "token"])
async def test_a_post_from_another_origin_is_refused_with_a_valid_token(make_app: Any, seeded: Any,
                                                                       mode: str) -> None:
    """Even with a right CSRF token (or a bearer token), another origin's post is a 403 that says why."""
    overrides = {"dashboard_token": seeded.TOKEN} if mode == "token" else {}
    headers = {"Authorization": f"Bearer {seeded.TOKEN}"} if mode == "token" else {}
    async with seeded.asgi_client(make_app(**overrides), headers=headers) as client:
        page = await client.get("/errors/1")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0] if mode == "loopback" else ""
        refused = await client.post("/errors/1/ignore", data={"csrf_token": csrf},
                                    headers={"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"})
        accepted = await client.post("/errors/1/ignore", data={"csrf_token": csrf},
                                     headers={"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403 and "cross-origin request refused" in refused.text
    assert accepted.status_code == 303
