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


def _asgi_post(body_chunks: Any, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI messages of one POST whose body comes from `body_chunks`, read as the app asks."""
    return {"type": "http", "method": "POST", "path": "/slack/actions", "headers": headers, "query_string": b"",
            "chunks": body_chunks}


async def _call_asgi(app: Any, scope: dict[str, Any]) -> tuple[int, bytes, int]:
    """(status, body, bytes the app read) of one request run straight through `app`."""
    chunks = scope.pop("chunks")
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), read


async def test_a_400_mb_body_is_refused_while_reading(clock: Any) -> None:
    """400 MB streamed with no Content-Length: 413 after the first 64 KiB, RSS grows < 20 MB."""
    import psutil

    app = Starlette(routes=[route(SECRET, lambda group, user: None, clock=clock)])
    chunk = b"x" * (1024 * 1024)
    process = psutil.Process()
    before = process.memory_info().rss
    status, body, read = await _call_asgi(app, _asgi_post(iter([chunk] * 400), []))
    grown = process.memory_info().rss - before
    assert (status, read) == (413, 1024 * 1024)  # one chunk read, then refused
    assert b"body too large" in body
    assert grown < 20 * 1024 * 1024
    declared = await _call_asgi(app, _asgi_post(iter([]), [(b"content-length", b"419430400")]))
    assert declared[:1] == (413,) and declared[2] == 0  # a declared size over the limit: nothing read


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', '{"user": "ayumi", "actions": []}',
                                     '{"actions": {"action_id": "kansoku_resolve"}}', '{"actions": [1]}'])
async def test_signed_payloads_of_another_shape_are_400(kit: Any, app: Any, payload: str) -> None:
    """A genuine signature over a payload that is not Slack's shape is a clear 400, never a 500."""
    client, resolved = app
    body = urlencode({"payload": payload}).encode()
    response = await client.post("/slack/actions", content=body, headers=_headers(body, int(kit.T0)))
    assert response.status_code == 400 and "payload" in response.json()["error"]
    assert resolved == []


async def test_an_unknown_group_gets_a_reply_saying_so(kit: Any, store: Any) -> None:
    """Resolving a group that does not exist answers that it does not, with nothing resolved."""
    from kansoku.web.dashboard.commands import slack_resolver

    app = Starlette(routes=[route(SECRET, slack_resolver(store, None, kit.Clock()), clock=kit.Clock())])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    body = _body("no-such-group")
    response = await client.post("/slack/actions", content=body, headers=_headers(body, int(kit.T0)))
    assert response.status_code == 200
    assert response.json() == {"resolved": [], "unknown": ["no-such-group"],
                               "text": "No error group no-such-group: nothing was resolved for it."}
