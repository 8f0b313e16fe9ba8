"""The log channel: each notification becomes one structured log line (the demo's default)."""

from __future__ import annotations

import httpx

from kansoku.alerts.render import Notification
from kansoku.alerts.rules import LogChannel, SiteInfo
from kansoku.logs import get_logger

__all__ = ["LogSender"]

log = get_logger("kansoku.alerts")


class LogSender:
    """Writes the notification at the configured level."""

    def __init__(self, config: LogChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout

    async def send(self, note: Notification) -> str | None:
        """Log it; cannot fail."""
        method = getattr(log, self.config.level)
        method(
            "alert " + note["kind"], category="system", alert_title=note["title"], rule=note["rule"],
            severity=note["severity"], summary=note["summary"], count=note["count"],
            suppressed=note["suppressed"], groups=[item["group_key"] for item in note["alerts"]],
            links=[item["url"] for item in note["alerts"] if item["url"]], channel=self.config.name,
        )
        return None
