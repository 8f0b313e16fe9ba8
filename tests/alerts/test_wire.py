"""Wire formats against local HTTP servers: Slack, PagerDuty, Twilio, webhook (with its HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.rules import SiteInfo
from kansoku.store.tables import outbox

SITE = SiteInfo(service="shop", environment="test", dashboard_url="https://obs.example.com")
JSON = {"Content-Type": "application/json"}


def pipeline(
    store: Engine, clock: Any, channel: dict[str, Any], **rule: Any
) -> tuple[AlertEngine, Dispatcher]:
    raw = {"channels": [channel], "rules": [{"name": "crit", **rule}], "group_wait_seconds": 0}
    config = parse_alerting(raw, site=SITE)
    ids = iter(f"key-{n}" for n in range(1, 100))
    return (AlertEngine(config, store, clock=clock, new_id=lambda: next(ids)),
            Dispatcher(config, store, clock=clock, rng=lambda: 0.5))


def statuses(store: Engine) -> list[tuple[str, str, str | None]]:
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(select(outbox.c.kind, outbox.c.status, outbox.c.last_error))]


def test_slack_incoming_webhook(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Slack webhook: JSON with fallback text and a severity-coloured attachment of Block Kit blocks."""
    engine, dispatcher = pipeline(store, clock, {"name": "s", "type": "slack",
                                                 "webhook_url": receiver.url + "/services/T0/B0/XXXX"})
    engine.on_error(kit.event(message="total <b>&</b> over"), kit.change())
    dispatcher.run_once()
    [req] = receiver.requests
    assert (req.method, req.path, req.headers["content-type"]) == ("POST", "/services/T0/B0/XXXX",
                                                                   "application/json")
    body = req.json()
    assert body["text"] == "[CRITICAL] crit: ValueError: total <b>&</b> over"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#d00000"
    blocks = attachment["blocks"]
    title = "[CRITICAL] crit: ValueError: total <b>&</b> over"
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "emoji": True, "text": title}}
    assert blocks[1]["text"]["text"].startswith("*ValueError: total &lt;b&gt;&amp;&lt;/b&gt; over*")
    assert blocks[2] == {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "View details", "emoji": True},
         "url": "https://obs.example.com/kansoku/errors/7", "action_id": "kansoku_view"},
        {"type": "button", "text": {"type": "plain_text", "text": "Mark as resolved", "emoji": True},
         "style": "primary", "value": "g1", "action_id": "kansoku_resolve"},
    ]}
    assert blocks[-1]["type"] == "context"
    assert statuses(store) == [("trigger", "sent", None)]


def test_slack_web_api_post_then_update_on_resolve(
    kit: Any, store: Engine, clock: Any, receiver: Any
) -> None:
    """chat.postMessage with the bot token; the resolution edits that message with chat.update."""
    receiver.default = (200, JSON, b'{"ok": true, "channel": "C024BE91L", "ts": "1503435956.000247"}')
    engine, dispatcher = pipeline(store, clock, {"name": "s", "type": "slack", "token": "xoxb-1-2-abc",
                                                 "channel": "#ops", "api_url": receiver.url + "/api"})
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    engine.on_resolve("g1")
    dispatcher.run_once()
    post, update = receiver.requests
    assert (post.path, post.headers["authorization"]) == ("/api/chat.postMessage", "Bearer xoxb-1-2-abc")
    assert post.json()["channel"] == "#ops"
    assert update.path == "/api/chat.update"
    body = update.json()
    assert (body["channel"], body["ts"]) == ("C024BE91L", "1503435956.000247")
    assert body["text"] == "[RESOLVED] crit: ValueError: amount over limit"
    assert body["attachments"][0]["color"] == "#2eb886"
    assert all(b["type"] != "actions" or len(b["elements"]) == 1 for b in body["attachments"][0]["blocks"])
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.provider_ref)).scalars().all() == [
            "C024BE91L:1503435956.000247:1", "C024BE91L:1503435956.000247:1"]


def test_slack_api_error_is_permanent(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Slack's HTTP 200 with ok=false (channel_not_found) marks the row dead with Slack's error."""
    receiver.default = (200, JSON, b'{"ok": false, "error": "channel_not_found"}')
    engine, dispatcher = pipeline(store, clock, {"name": "s", "type": "slack", "token": "xoxb-1",
                                                 "channel": "C1", "api_url": receiver.url})
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    assert statuses(store) == [("trigger", "dead", "Slack chat.postMessage failed: channel_not_found")]


def test_pagerduty_trigger_and_resolve(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Events API v2: trigger with dedup_key = group key and mapped severity; resolve with the same key."""
    receiver.default = (202, JSON, b'{"status": "success", "message": "Event processed", "dedup_key": "g1"}')
    engine, dispatcher = pipeline(store, clock, {"name": "pd", "type": "pagerduty", "routing_key": "R" * 32,
                                                 "url": receiver.url + "/v2/enqueue"})
    engine.on_error(kit.event(severity="high"), kit.change(count=12))
    dispatcher.run_once()
    engine.on_resolve("g1")
    dispatcher.run_once()
    trigger, resolve = (r.json() for r in receiver.requests)
    assert {r.path for r in receiver.requests} == {"/v2/enqueue"}
    assert trigger == {
        "routing_key": "R" * 32, "event_action": "trigger", "dedup_key": "g1",
        "payload": {
            "summary": "crit: ValueError: amount over limit", "source": "shop", "severity": "error",
            "timestamp": "2027-01-15T08:00:00Z", "group": "shop", "class": "ValueError",
            "component": "shop.orders.create",
            "custom_details": {"rule": "crit", "count_in_window": 1, "count": 12, "suppressed": 0,
                               "category": "application", "message": "amount over limit",
                               "environment": "test", "release": "1.0", "event_id": "ev-g1"},
        },
        "client": "kansoku", "client_url": "https://obs.example.com/kansoku/errors/7",
        "links": [{"href": "https://obs.example.com/kansoku/errors/7", "text": "View in kansoku"}],
    }
    assert resolve == {"routing_key": "R" * 32, "event_action": "resolve", "dedup_key": "g1"}


def test_pagerduty_400_is_not_retried(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """PagerDuty's 400 (invalid event) is permanent: dead at once, with the answer kept."""
    receiver.default = (400, JSON, b'{"status": "invalid event", "message": "Event object is invalid"}')
    engine, dispatcher = pipeline(store, clock, {"name": "pd", "type": "pagerduty", "routing_key": "k",
                                                 "url": receiver.url})
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [(kind, status, error)] = statuses(store)
    assert (kind, status) == ("trigger", "dead")
    assert error is not None and error.startswith("PagerDuty answered HTTP 400")


def test_twilio_sms(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Twilio: form-encoded To/From/Body to Accounts/{sid}/Messages.json with basic auth, one per number."""
    receiver.default = (201, JSON, b'{"sid": "SM123", "status": "queued"}')
    engine, dispatcher = pipeline(
        store, clock, {"name": "sms", "type": "sms", "account_sid": "AC42", "auth_token": "tok",
                       "from": "+15005550006", "to": ["+15551230001"], "api_url": receiver.url},
        recipients=["+15551230002", "ops@example.com"])
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [req] = receiver.requests
    assert req.path == "/2010-04-01/Accounts/AC42/Messages.json"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"AC42:tok").decode()
    form = parse_qs(req.body.decode())
    assert form == {"To": ["+15551230002"], "From": ["+15005550006"],
                    "Body": ["[CRITICAL] crit: ValueError: amount over limit (1 in 5 min) "
                             "https://obs.example.com/kansoku/errors/7"]}
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.provider_ref)).scalar() == "SM123"


def test_webhook_signature_and_idempotency_key(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Webhook: HMAC-SHA256 over "timestamp.body" verifies; a retry carries the same Idempotency-Key."""
    receiver.responses = [(503, {}, b"busy")]
    engine, dispatcher = pipeline(store, clock, {"name": "w", "type": "webhook", "url": receiver.url + "/in",
                                                 "secret": "whsec", "headers": {"X-Team": "ops"}})
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    assert statuses(store)[0][1] == "pending"
    clock.advance(10)
    dispatcher.run_once()
    first, second = receiver.requests
    for req in (first, second):
        timestamp = req.headers["x-kansoku-timestamp"]
        expected = hmac.new(b"whsec", timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(req.headers["x-kansoku-signature"], "sha256=" + expected)
        assert req.headers["x-team"] == "ops" and req.headers["x-kansoku-event"] == "trigger"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "key-1"
    assert first.headers["x-kansoku-timestamp"] == str(int(kit.T0))
    assert second.headers["x-kansoku-timestamp"] == str(int(kit.T0 + 10))
    body = json.loads(second.body)
    assert {k: body[k] for k in ("version", "kind", "status", "rule", "severity", "count", "suppressed")} == {
        "version": "1", "kind": "trigger", "status": "firing", "rule": "crit", "severity": "critical",
        "count": 1, "suppressed": 0}
    assert statuses(store) == [("trigger", "sent", None)]


def test_secrets_stay_out_of_errors(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """A failing Slack webhook's error text names neither its URL nor its token."""
    receiver.default = (404, {}, b"no_service")
    secret_url = receiver.url + "/services/T0/B0/sekrit-token-123"
    engine, dispatcher = pipeline(store, clock, {"name": "s", "type": "slack", "webhook_url": secret_url})
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [(_, status, error)] = statuses(store)
    assert status == "dead" and error == "Slack webhook answered HTTP 404: no_service"
