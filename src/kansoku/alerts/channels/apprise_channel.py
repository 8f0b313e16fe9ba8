"""Any Apprise URL (Teams, Discord, Telegram, Opsgenie, ntfy...): an optional extra."""

from __future__ import annotations

import warnings
from typing import Any

import httpx

from kansoku.alerts.channels._common import DeliveryError
from kansoku.alerts.render import Notification, text_body
from kansoku.alerts.rules import AppriseChannel, SiteInfo

__all__ = ["AppriseSender"]

INSTALL_HINT = "the apprise channel needs Apprise: pip install 'kansoku[apprise]'"


class AppriseSender:
    """Notifies every configured Apprise URL."""

    def __init__(self, config: AppriseChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout

    async def send(self, note: Notification) -> str | None:
        """Apprise reports only success or failure; a failure is retried."""
        # Apprise loads its plugins lazily, and one imports the deprecated `imghdr`: not our concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            notifier = _notifier(self.config)
        kind = {"resolve": "success", "test": "info"}.get(note["kind"], "failure")
        ok = await notifier.async_notify(body=text_body(note), title=note["title"], notify_type=kind)
        if not ok:
            raise DeliveryError("apprise: no service accepted the notification (see Apprise's log)")
        return None


def _notifier(config: AppriseChannel) -> Any:
    try:
        import apprise
    except ImportError:
        raise DeliveryError(INSTALL_HINT, permanent=True) from None
    notifier = apprise.Apprise()
    for index, url in enumerate(config.urls, 1):
        if not notifier.add(url.get_secret_value()):
            raise DeliveryError(f"apprise: URL #{index} is not a valid Apprise URL", permanent=True)
    return notifier
