"""E-mail over SMTP with aiosmtplib: STARTTLS, implicit TLS or plain; login when configured.

One message per recipient, each with its own ``To:`` (recipients never see each other), as
multipart/alternative: the text rendering and the HTML rendering with every value escaped. A retry
sends only to the recipients an earlier attempt did not reach (`send_each`).
"""

from __future__ import annotations

import email.utils
import time
from email.message import EmailMessage
from typing import Any

import httpx

from kansoku.alerts.channels._common import DeliveryError, recipients_for, send_each
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
        """One message per recipient not reached yet."""
        try:
            import aiosmtplib
        except ImportError:
            raise DeliveryError("the email channel needs aiosmtplib: pip install 'kansoku[email]'",
                                permanent=True) from None
        recipients = recipients_for("email", note["recipients"], self.config.recipients)
        if not recipients:
            raise DeliveryError("email: no recipients (set `to` on the channel or addresses on the rule)",
                                permanent=True)
        options = self._options()

        async def one(recipient: str) -> None:
            message = build_message(note, self.config.from_addr, recipient)
            try:
                await aiosmtplib.send(message, **options)
            except aiosmtplib.SMTPRecipientsRefused as exc:  # RCPT refused: the server's answer for it
                raise _answered(exc.recipients[0]) from None
            except aiosmtplib.SMTPResponseException as exc:
                raise _answered(exc) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}"[:300]) from None

        return await send_each(note, recipients, "email", one)

    def _options(self) -> dict[str, Any]:
        config = self.config
        return {
            "hostname": config.host, "port": config.port, "timeout": self.timeout,
            "use_tls": config.security == "tls", "start_tls": config.security == "starttls",
            "username": config.username, "validate_certs": config.validate_certs,
            "password": None if config.password is None else config.password.get_secret_value(),
        }


def _answered(exc: Any) -> DeliveryError:
    """An SMTP reply as a `DeliveryError`: 5xx is permanent, 4xx worth retrying."""
    code = int(exc.code)
    return DeliveryError(f"SMTP server answered {code}: {exc.message}"[:300], status_code=code,
                         permanent=500 <= code < 600)
