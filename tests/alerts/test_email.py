"""E-mail through a real SMTP server (aiosmtpd): right recipients, one message each, escaped HTML."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler
from sqlalchemy import Engine

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.rules import SiteInfo


class Inbox(MessageHandler):
    """Keeps every message the server accepts, with the envelope recipients."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Message] = []

    def handle_message(self, message: Message) -> None:
        self.messages.append(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    """A real SMTP server on 127.0.0.1."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_one_message_per_recipient_with_escaped_html(kit: Any, store: Engine, clock: Any,
                                                     smtp: tuple[Controller, Inbox]) -> None:
    """Each recipient gets its own message (own To:); HTML escapes the error text; text part is plain."""
    controller, inbox = smtp
    config = parse_alerting({
        "channels": [{"name": "mail", "type": "email", "host": "127.0.0.1", "port": controller.port,
                      "security": "none", "from": "kansoku@example.com", "to": ["default@example.com"]}],
        "rules": [{"name": "crit", "description": "Critical errors", "recipients": ["a@example.com",
                                                                                    "b@example.com"]}],
        "group_wait_seconds": 0,
    }, site=SiteInfo(service="shop", environment="test", dashboard_url="https://obs.example.com"))
    engine = AlertEngine(config, store, clock=clock)
    engine.on_error(kit.event(message='bad <script>alert("x")</script> & "quote"'), kit.change())
    assert Dispatcher(config, store, clock=clock).run_once() == 1
    assert sorted(m["To"] for m in inbox.messages) == ["a@example.com", "b@example.com"]
    for message in inbox.messages:
        assert message["X-RcptTo"] == message["To"]  # the envelope names only this recipient
        assert message["From"] == "kansoku@example.com"
        subject = str(make_header(decode_header(message["Subject"]))).strip()
        assert subject == '[CRITICAL] crit: ValueError: bad <script>alert("x")</script> & "quote"'
        assert message.get_content_type() == "multipart/alternative"
        text, html = message.get_payload()
        assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
        plain = text.get_payload(decode=True).decode()
        markup = html.get_payload(decode=True).decode()
        assert 'bad <script>alert("x")</script>' in plain
        assert "<script>" not in markup
        assert "bad &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quote&#34;" in markup
        assert '<a href="https://obs.example.com/kansoku/errors/7">View details</a>' in markup


def test_channel_recipients_when_rule_has_none(kit: Any, store: Engine, clock: Any,
                                               smtp: tuple[Controller, Inbox]) -> None:
    """Without rule recipients the channel's own list is used; a header injection attempt stays one line."""
    controller, inbox = smtp
    config = parse_alerting({
        "channels": [{"name": "mail", "type": "email", "host": "127.0.0.1", "port": controller.port,
                      "security": "none", "from": "kansoku@example.com", "to": ["ops@example.com"]}],
        "rules": [{"name": "crit"}], "group_wait_seconds": 0,
    })
    AlertEngine(config, store, clock=clock).on_error(kit.event(message="x\r\nBcc: evil@example.com"),
                                                     kit.change())
    Dispatcher(config, store, clock=clock).run_once()
    [message] = inbox.messages
    assert message["To"] == "ops@example.com" and message["Bcc"] is None
    assert message["X-RcptTo"] == "ops@example.com"
