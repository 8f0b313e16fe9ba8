"""Slack: an incoming webhook, or the Web API (chat.postMessage / chat.update) with a bot token.

The message is Block Kit inside a coloured attachment (the severity colour bar): title, details
per group, a "View details" link to the dashboard and a "Mark as resolved" button that Slack posts
to `/kansoku/slack/actions`. With a bot token the message's `channel:ts` is kept, so a resolution
updates the message in place (or answers in its thread when it listed several groups).
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from kansoku.alerts.channels._common import DeliveryError, hide_in_logs, post, recipients_for
from kansoku.alerts.render import AlertItem, Notification, colour, iso
from kansoku.alerts.rules import SiteInfo, SlackChannel

__all__ = ["RESOLVE_ACTION", "SlackSender", "slack_message"]

RESOLVE_ACTION: Final = "kansoku_resolve"
_MAX_GROUPS: Final = 10
_RETRYABLE: Final = frozenset({"ratelimited", "internal_error", "service_unavailable", "request_timeout",
                               "fatal_error", "team_added_to_org"})


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit] or " ", "emoji": True}


def _item_blocks(note: Notification, item: AlertItem) -> list[dict[str, Any]]:
    window = f"{item['window_count']} in {note['window_minutes']} min"
    fields = [f"*Severity*\n{item['severity']}", f"*Category*\n{_escape(item['category'])}",
              f"*Count*\n{window} ({item['count']} in all)", f"*Service*\n{_escape(item['service'])}"]
    if item["suppressed"]:
        fields.append(f"*Suppressed*\n{item['suppressed']} since the last notification")
    text = f"*{_escape(item['title'])}*"
    if item["message"] and item["message"] not in item["title"]:
        text += f"\n```{_escape(item['message'][:1500])}```"
    if item["culprit"]:
        text += f"\nat `{_escape(item['culprit'])}`"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]},
         "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    buttons: list[dict[str, Any]] = []
    if item["url"]:
        buttons.append({"type": "button", "text": _plain("View details", 75), "url": item["url"],
                        "action_id": "kansoku_view"})
    if note["kind"] == "trigger" and item["group_key"] and item["group_id"] is not None:
        buttons.append({"type": "button", "text": _plain("Mark as resolved", 75), "style": "primary",
                        "value": item["group_key"], "action_id": RESOLVE_ACTION})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def slack_message(note: Notification) -> dict[str, Any]:
    """The chat.postMessage / webhook body: fallback text and a coloured attachment of blocks."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(note["title"], 150)}]
    if note["description"]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _escape(note["description"])}})
    for item in note["alerts"][:_MAX_GROUPS]:
        blocks.extend(_item_blocks(note, item))
    more = len(note["alerts"]) - _MAX_GROUPS
    footer = f"{note['service']} ({note['environment']}) · {iso(note['timestamp'])}"
    if more > 0:
        footer = f"and {more} more groups · " + footer
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(footer)}]})
    return {"text": note["title"], "attachments": [{"color": colour(note), "fallback": note["summary"][:300],
                                                    "blocks": blocks}]}


class SlackSender:
    """Sends to Slack by webhook or Web API."""

    def __init__(self, config: SlackChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout
        self.client = client

    async def send(self, note: Notification) -> str | None:
        """Post the message (or update it on resolve); returns `channel:ts:groups` with a token."""
        message = slack_message(note)
        if self.config.webhook_url is not None:
            url = hide_in_logs(self.config.webhook_url.get_secret_value())
            await post(self.client, url, "Slack webhook", json=message, timeout=self.timeout)
            return None
        if note["kind"] == "resolve" and note["ref"]:
            return await self._answer(note, message, note["ref"])
        refs = []
        assert self.config.channel is not None
        for target in recipients_for("slack", note["recipients"], (self.config.channel,)):
            data = await self._call("chat.postMessage", {"channel": target, **message})
            refs.append(f"{data['channel']}:{data['ts']}:{len(note['alerts'])}")
        return refs[0] if refs else None

    async def _answer(self, note: Notification, message: dict[str, Any], ref: str) -> str:
        channel, ts, groups = [*ref.split(":"), "1", "1"][:3]
        if groups == "1":  # the message was about this group alone: mark it resolved in place
            await self._call("chat.update", {"channel": channel, "ts": ts, **message})
        else:  # it listed other groups too: say it in its thread
            await self._call("chat.postMessage", {"channel": channel, "thread_ts": ts, **message})
        return ref

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.config.token is not None
        response = await post(
            self.client, f"{self.config.api_url.rstrip('/')}/{method}", f"Slack {method}", json=body,
            timeout=self.timeout, headers={"Authorization": f"Bearer {self.config.token.get_secret_value()}"},
        )
        data: dict[str, Any] = response.json()
        if not data.get("ok"):
            error = str(data.get("error", "unknown_error"))
            raise DeliveryError(f"Slack {method} failed: {error}", status_code=response.status_code,
                                permanent=error not in _RETRYABLE)
        return data
