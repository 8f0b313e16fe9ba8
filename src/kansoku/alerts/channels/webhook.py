"""Webhook: the notification as JSON, signed with HMAC-SHA256 over the timestamp and the body.

Headers: ``X-Kansoku-Timestamp`` (epoch seconds), ``X-Kansoku-Signature: sha256=<hex>`` where the
hex digest is HMAC-SHA256(secret, ``"{timestamp}." + body``), ``Idempotency-Key`` (the same on every
retry of a notification) and ``X-Kansoku-Event`` (trigger, resolve or test). A receiver recomputes
the digest over the raw body, compares in constant time and rejects old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson

from kansoku.alerts.channels._common import hide_in_logs, post
from kansoku.alerts.render import Notification, iso
from kansoku.alerts.rules import SiteInfo, WebhookChannel
from kansoku.typing import Clock

__all__ = ["WebhookSender", "sign", "webhook_body"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(note: Notification) -> dict[str, Any]:
    """The JSON document a webhook receives (version 1)."""
    return {
        "version": "1",
        "kind": note["kind"],
        "status": "resolved" if note["kind"] == "resolve" else "firing",
        "rule": note["rule"],
        "description": note["description"],
        "severity": note["severity"],
        "title": note["title"],
        "summary": note["summary"],
        "count": note["count"],
        "suppressed": note["suppressed"],
        "service": note["service"],
        "environment": note["environment"],
        "timestamp": iso(note["timestamp"]),
        "idempotency_key": note["idempotency_key"],
        "alerts": note["alerts"],
    }


class WebhookSender:
    """POSTs signed JSON to a URL."""

    def __init__(self, config: WebhookChannel, client: httpx.AsyncClient, site: SiteInfo,
                 clock: Clock = time.time) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout
        self.client = client
        self.clock = clock

    async def send(self, note: Notification) -> str | None:
        """POST the document; any 2xx is a delivery."""
        body = orjson.dumps(webhook_body(note))
        timestamp = str(int(self.clock()))
        headers = {**self.config.headers, "Content-Type": "application/json",
                   "X-Kansoku-Timestamp": timestamp, "Idempotency-Key": note["idempotency_key"],
                   "X-Kansoku-Event": note["kind"]}
        if self.config.secret is not None:
            headers["X-Kansoku-Signature"] = sign(self.config.secret.get_secret_value(), timestamp, body)
        await post(self.client, hide_in_logs(self.config.url), "webhook", content=body, headers=headers,
                   timeout=self.timeout)
        return None
