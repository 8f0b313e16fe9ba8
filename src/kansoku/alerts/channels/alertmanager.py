"""Prometheus Alertmanager API v2: `POST /api/v2/alerts` with one alert per group.

An alert's identity is its label set (alertname and rule = the rule's name, severity, service,
environment, group; `rule` is what deploy/alertmanager.yml groups by, beside Prometheus' alerts),
so a resolution repeats the labels with `endsAt` now. Alertmanager forgets an alert that is not
re-sent, so firing alerts carry an `endsAt` three re-send intervals ahead and the engine re-sends
them every `resend_seconds` while they fire.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from kansoku.alerts.channels._common import post
from kansoku.alerts.render import AlertItem, Notification, iso
from kansoku.alerts.rules import AlertmanagerChannel, SiteInfo
from kansoku.typing import Clock

__all__ = ["AlertmanagerSender", "postable_alerts"]


def labels_of(note: Notification, item: AlertItem) -> dict[str, str]:
    """The label set that identifies the alert in Alertmanager."""
    labels = {"alertname": note["rule"], "rule": note["rule"], "severity": item["severity"],
              "service": item["service"],
              "environment": item["environment"], "source": "kansoku"}
    if item["group_key"]:
        labels["group"] = item["group_key"]
    return labels


def postable_alerts(note: Notification, now: float, resend_seconds: float) -> list[dict[str, Any]]:
    """The request body: a list of postableAlert objects."""
    ends = now if note["kind"] == "resolve" else now + 3 * resend_seconds
    alerts = []
    for item in note["alerts"]:
        annotations = {"summary": item["title"], "description": item["message"] or item["title"],
                       "count": str(item["window_count"]), "suppressed": str(item["suppressed"])}
        if note["description"]:
            annotations["rule"] = note["description"]
        alert: dict[str, Any] = {"labels": labels_of(note, item), "annotations": annotations,
                                 "startsAt": iso(min(item["starts_at"], now)), "endsAt": iso(ends)}
        if item["url"]:
            alert["generatorURL"] = item["url"]
        alerts.append(alert)
    return alerts


class AlertmanagerSender:
    """Posts alerts to one Alertmanager (or an HA pair behind one URL)."""

    def __init__(self, config: AlertmanagerChannel, client: httpx.AsyncClient, site: SiteInfo,
                 clock: Clock = time.time) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout
        self.client = client
        self.clock = clock

    async def send(self, note: Notification) -> str | None:
        """POST the alerts; 200 is a delivery."""
        body = postable_alerts(note, self.clock(), self.config.resend_seconds)
        await post(self.client, f"{self.config.url.rstrip('/')}/api/v2/alerts", "Alertmanager", json=body,
                   headers=dict(self.config.headers), timeout=self.timeout)
        return None
