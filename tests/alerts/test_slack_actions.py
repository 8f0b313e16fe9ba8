"""POST /slack/actions: Slack's v0 signature verified over the raw body, 5-minute window, no replays."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette

from kansoku.web.slack_actions import route

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _body(group: str = "g1", action: str = "kansoku_resolve") -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U1", "username": "ayumi"},
               "actions": [{"action_id": action, "value": group, "type": "button"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def app(clock: Any) -> tuple[httpx.AsyncClient, list[tuple[str, str]]]:
    """The route in a bare Starlette app behind an ASGI client; resolved groups are recorded."""
    resolved: list[tuple[str, str]] = []
    app = Starlette(routes=[route(SECRET, lambda group, user: resolved.append((group, user)), clock=clock)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), resolved


def _headers(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"}


async def test_signed_request_resolves_the_group(kit: Any, app: Any) -> None:
    """A request signed as Slack signs it resolves the group named by the button."""
    client, resolved = app
    body = _body()
    response = await client.post("/slack/actions", content=body, headers=_headers(body, int(kit.T0) - 10))
    assert (response.status_code, response.json()) == (200, {"resolved": ["g1"]})
    assert resolved == [("g1", "ayumi")]


async def test_bad_signature_is_refused(kit: Any, app: Any) -> None:
    """A signature made with another secret, or over another body, is refused."""
    client, resolved = app
    body = _body()
    other = _headers(body, int(kit.T0), "other")
    wrong_secret = await client.post("/slack/actions", content=body, headers=other)
    tampered = await client.post("/slack/actions", content=_body("g2"), headers=_headers(body, int(kit.T0)))
    missing = await client.post("/slack/actions", content=body)
    assert [r.status_code for r in (wrong_secret, tampered, missing)] == [401, 401, 401]
    assert [r.json()["error"] for r in (wrong_secret, tampered, missing)] == [
        "bad signature", "bad signature", "missing signature headers"]
    assert resolved == []


async def test_stale_timestamp_is_refused(kit: Any, app: Any) -> None:
    """A correctly signed request from more than five minutes ago (or ahead) is refused."""
    client, resolved = app
    body = _body()
    old = await client.post("/slack/actions", content=body, headers=_headers(body, int(kit.T0) - 301))
    ahead = await client.post("/slack/actions", content=body, headers=_headers(body, int(kit.T0) + 301))
    assert [(r.status_code, r.json()["error"]) for r in (old, ahead)] == [(401, "stale timestamp")] * 2
    assert resolved == []


async def test_replay_is_refused(kit: Any, app: Any, clock: Any) -> None:
    """The same signed request sent twice inside the window is accepted once."""
    client, resolved = app
    body = _body()
    headers = _headers(body, int(kit.T0))
    first = await client.post("/slack/actions", content=body, headers=headers)
    clock.advance(60)
    again = await client.post("/slack/actions", content=body, headers=headers)
    assert (first.status_code, again.status_code, again.json()["error"]) == (200, 401, "replayed request")
    assert resolved == [("g1", "ayumi")]


async def test_other_actions_and_bad_payloads(kit: Any, app: Any) -> None:
    """Other buttons are acknowledged and ignored; a signed body without a payload is a 400."""
    client, resolved = app
    view = _body(action="kansoku_view")
    ignored = await client.post("/slack/actions", content=view, headers=_headers(view, int(kit.T0)))
    assert ignored.json() == {"resolved": []}
    junk = b"hello=1"
    bad = await client.post("/slack/actions", content=junk, headers=_headers(junk, int(kit.T0)))
    assert bad.status_code == 400
    assert resolved == []
