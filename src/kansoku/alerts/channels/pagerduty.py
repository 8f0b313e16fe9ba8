"""PagerDuty Events API v2: one event per group, `dedup_key` = the group's key.

A trigger for a group already open in PagerDuty adds to its alert instead of opening another; the
group's resolution sends `resolve` with the same key. Severities map onto PagerDuty's four.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from kansoku.alerts.channels._common import post
from kansoku.alerts.render import AlertItem, Notification, iso
from kansoku.alerts.rules import PagerDutyChannel, SiteInfo

__all__ = ["SEVERITY_MAP", "PagerDutySender", "pagerduty_event"]

SEVERITY_MAP: Final = {"emergency": "critical", "critical": "critical", "high": "error", "medium": "warning",
                       "low": "info"}

_ACTIONS: Final = {"trigger": ("trigger",), "resolve": ("resolve",), "test": ("trigger", "resolve")}


def dedup_key(note: Notification, item: AlertItem) -> str:
    """The group's key; rules over all groups use the rule's name."""
    return (item["group_key"] or f"kansoku:{note['rule']}")[:255]


def pagerduty_event(note: Notification, item: AlertItem, routing_key: str, action: str) -> dict[str, Any]:
    """One Events API v2 body."""
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                             "dedup_key": dedup_key(note, item)}
    if action != "trigger":
        return event
    details = {"rule": note["rule"], "count_in_window": item["window_count"], "count": item["count"],
               "suppressed": item["suppressed"], "category": item["category"], "message": item["message"],
               "environment": item["environment"], "release": item["release"], "event_id": item["event_id"]}
    payload: dict[str, Any] = {
        "summary": f"{note['rule']}: {item['title']}"[:1024], "source": item["service"],
        "severity": SEVERITY_MAP.get(item["severity"], "error"), "timestamp": iso(item["starts_at"]),
        "group": item["service"], "class": item["exception_type"] or item["category"],
        "custom_details": details,
    }
    if item["culprit"]:
        payload["component"] = item["culprit"]
    event.update(payload=payload, client="kansoku")
    if item["url"]:
        event.update(client_url=item["url"], links=[{"href": item["url"], "text": "View in kansoku"}])
    return event


class PagerDutySender:
    """Sends trigger and resolve events."""

    def __init__(self, config: PagerDutyChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout
        self.client = client

    async def send(self, note: Notification) -> str | None:
        """One event per group; a test triggers and at once resolves a test alert."""
        key = self.config.routing_key.get_secret_value()
        actions = _ACTIONS[note["kind"]]
        last = None
        for item in note["alerts"]:
            for action in actions:
                response = await post(self.client, self.config.url, "PagerDuty", timeout=self.timeout,
                                      json=pagerduty_event(note, item, key, action))
                last = _dedup(response) or last
        return last


def _dedup(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("dedup_key")
    except ValueError:
        return None
    return str(value)[:256] if value else None
