"""Redaction (must-show): secrets in locals, headers, body and message never reach the store or the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette

from kansoku.context import context
from kansoku.errors import ErrorTracker
from kansoku.store import Store
from kansoku.web.api_errors import routes

from .conftest import load_module

CARD, PASSWORD, TOKEN = "4111111111111111", "hunter2-Secret-pw", "abcdef0123456789tokenvalue"
SECRETS = (CARD, "4111 1111 1111 1111", "4111-1111-1111-1111", PASSWORD, TOKEN)

CHECKOUT = '''
def pay(form, auth_header):
    password = form["password"]
    card = form["card"]
    spaced_card = " ".join(card[i:i + 4] for i in range(0, 16, 4))
    bearer = auth_header
    raise ValueError(f"charge failed for {spaced_card} with {bearer}, password={password}")


def run(form, auth_header):
    try:
        pay(form, auth_header)
    except ValueError as exc:
        return exc
'''


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_secrets_never_reach_the_store_or_the_api(tmp_path: Path, store: Store, db_url: str,
                                                        make_tracker: Callable[..., ErrorTracker]) -> None:
    """Card number, password and bearer token: not in the database files, not in any API response."""
    tracker = make_tracker(trace_level="VERBOSE")  # locals are captured at this level
    checkout = load_module(tmp_path / "checkout.py", CHECKOUT, "checkout")
    form = {"password": PASSWORD, "card": CARD, "note": f"my card is {CARD}"}
    exc = checkout.run(form, f"Bearer {TOKEN}")
    request = {
        "method": "POST", "route": "/pay", "url": f"https://shop.example/pay?token={TOKEN}&card={CARD}",
        "headers": {"authorization": f"Bearer {TOKEN}", "cookie": f"session={PASSWORD}",
                    "x-card": "4111-1111-1111-1111", "x-note": f"Bearer {TOKEN}"},
        "body": {"password": PASSWORD, "card_number": CARD,
                 "comment": f"card 4111 1111 1111 1111 password: {PASSWORD}"},
    }
    with context(request_id="r-1", api_key=TOKEN):
        log_line = {"event": f"login with password={PASSWORD}", "request_id": "r-1"}
        tracker.breadcrumb_processor(None, "info", log_line)
        event_id = tracker.capture(exc, request=request, user={"id": "u1", "password": PASSWORD},
                                   tags={"card": CARD}, payload=form)
    assert tracker.close(10)
    store.close()

    files = [p for p in Path(db_url.removeprefix("sqlite:///")).parent.iterdir() if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert raw.count(event_id.encode()) >= 1  # the event is there...
    assert [s for s in SECRETS if s.encode() in raw] == []  # ...its secrets are not

    app = Starlette(routes=routes(store.engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        bodies = [(await client.get(path)).text for path in (
            "/api/errors", f"/api/errors/{event_id}", "/api/errors/statistics", "/api/errors?q=charge")]
    assert all(event_id in body or "charge failed" in body for body in bodies)
    assert [_leaks(body) for body in bodies] == [[], [], [], []]
