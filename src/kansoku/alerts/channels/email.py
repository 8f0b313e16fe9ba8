"""E-mail over SMTP with aiosmtplib: STARTTLS, implicit TLS or plain; login when configured.

One message per recipient, each with its own ``To:`` (recipients never see each other), as
multipart/alternative: the text rendering and the HTML rendering with every value escaped.
"""

from __future__ import annotations

import email.utils
import time
from email.message import EmailMessage
from typing import Any

import httpx

from kansoku.alerts.channels import DeliveryError, recipients_for
from kansoku.alerts.render import Notification, html_body, text_body
from kansoku.alerts.rules import EmailChannel, SiteInfo

__all__ = ["EmailSender", "build_message"]


def _header(text: str) -> str:
    """A header value on one line (no header injection through a title)."""
    return " ".join(text.split())[:250]


def build_message(note: Notification, sender: str, recipient: str, now: float | None = None) -> EmailMessage:
    """The multipart text + HTML message for one recipient."""
    message = EmailMessage()
    message["Subject"] = _header(note["title"])
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = email.utils.formatdate(time.time() if now is None else now, usegmt=True)
    domain = sender.rpartition("@")[2] or "kansoku.local"
    message["Message-ID"] = email.utils.make_msgid(idstring=note["idempotency_key"][:32], domain=domain)
    message["X-Kansoku-Rule"] = _header(note["rule"])
    message.set_content(text_body(note))
    message.add_alternative(html_body(note), subtype="html")
    return message


class EmailSender:
    """Sends through one SMTP server."""

    def __init__(self, config: EmailChannel, client: httpx.AsyncClient, site: SiteInfo) -> None:
        self.config = config
        self.name = config.name
        self.timeout = config.timeout

    async def send(self, note: Notification) -> str | None:
        """One message per recipient."""
        try:
            import aiosmtplib
        except ImportError:
            raise DeliveryError("the email channel needs aiosmtplib: pip install 'kansoku[email]'",
                                permanent=True) from None
        recipients = recipients_for("email", note["recipients"], self.config.recipients)
        if not recipients:
            raise DeliveryError("email: no recipients (set `to` on the channel or addresses on the rule)",
                                permanent=True)
        for recipient in recipients:
            message = build_message(note, self.config.from_addr, recipient)
            try:
                await aiosmtplib.send(message, **self._options())
            except aiosmtplib.SMTPResponseException as exc:
                raise DeliveryError(f"SMTP server answered {exc.code}: {exc.message}"[:300],
                                    status_code=exc.code, permanent=500 <= exc.code < 600) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}"[:300]) from None
        return None

    def _options(self) -> dict[str, Any]:
        config = self.config
        return {
            "hostname": config.host, "port": config.port, "timeout": self.timeout,
            "use_tls": config.security == "tls", "start_tls": config.security == "starttls",
            "username": config.username, "validate_certs": config.validate_certs,
            "password": None if config.password is None else config.password.get_secret_value(),
        }
