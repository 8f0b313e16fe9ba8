"""SMS through Twilio's Messages API: form-encoded, HTTP basic auth, one short text per number.

A retry posts only to the numbers an earlier attempt did not reach (`send_each`).
"""

from __future__ import annotations

import httpx

from kansoku.alerts.channels._common import DeliveryError, post, recipients_for, send_each
from kansoku.alerts.render import Notification, short_text
from kansoku.alerts.rules import SiteInfo, SmsChannel

__all__ = ["SmsSender"]


class SmsSender:
    """Sends a short text to each recipient number."""

    def __init__(self, config: SmsChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout
        self.client = client

    async def send(self, note: Notification) -> str | None:
        """POST one message per number not reached yet; returns the first message SID."""
        numbers = recipients_for("sms", note["recipients"], self.config.recipients)
        if not numbers:
            raise DeliveryError("SMS: no recipient numbers (set `to` on the channel or +E.164 recipients on "
                                "the rule)", permanent=True)
        sid = self.config.account_sid
        url = f"{self.config.api_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        sender = ({"From": self.config.from_number} if self.config.from_number
                  else {"MessagingServiceSid": self.config.messaging_service_sid or ""})
        auth = (sid, self.config.auth_token.get_secret_value())
        body = short_text(note)

        async def one(number: str) -> str | None:
            response = await post(self.client, url, "Twilio", timeout=self.timeout, auth=auth,
                                  data={"To": number, **sender, "Body": body})
            return _sid(response)

        return await send_each(note, numbers, "SMS", one)


def _sid(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("sid")
    except ValueError:
        return None
    return str(value) if value else None
