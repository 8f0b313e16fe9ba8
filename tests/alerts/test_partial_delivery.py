"""Partial deliveries: a retry sends only to the recipients an earlier attempt did not reach.

E-mail against a real SMTP server (aiosmtpd) that refuses one address once, SMS against a local
HTTP server speaking Twilio's wire format; the progress lives in the store, so a new dispatcher
(another process, or after a restart) skips the same recipients.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler
from sqlalchemy import Engine, select

from kansoku.alerts import AlertEngine, Dispatcher, outbox, parse_alerting
from kansoku.alerts.rules import AlertingConfig, SiteInfo
from kansoku.store import create_store_engine, write_transaction
from kansoku.store.tables import delivery_attempts
from kansoku.store.tables import outbox as outbox_table

SITE = SiteInfo(service="shop", environment="test", dashboard_url="https://obs.example.com")
JSON = {"Content-Type": "application/json"}
MAIL = ["a@example.com", "b@example.com", "c@example.com"]
PHONES = ["+15551230001", "+15551230002", "+15551230003"]
LATER = 3600.0  # past any backoff of the first attempts


class FlakyInbox(MessageHandler):
    """Keeps accepted messages; answers 451 once for `flaky` (at RCPT or DATA), 550 for `refused`."""

    def __init__(self, *, phase: str = "RCPT", flaky: tuple[str, ...] = (), refused: tuple[str, ...] = (),
                 stall: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.messages: list[Message] = []
        self.phase = phase
        self.flaky = set(flaky)
        self.refused = set(refused)
        self.stall = set(stall)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        if self.phase == "RCPT" and address in self.flaky:
            self.flaky.discard(address)
            return "451 4.3.0 try again later"
        if address in self.stall:  # once: hang past the channel's timeout
            self.stall.discard(address)
            await asyncio.sleep(5)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        hit = self.flaky & set(envelope.rcpt_tos)
        if self.phase == "DATA" and hit:
            self.flaky -= hit
            return "451 4.3.0 try again later"
        answer: str = await super().handle_DATA(server, session, envelope)
        return answer

    def handle_message(self, message: Message) -> None:
        self.messages.append(message)

    def received(self) -> list[str]:
        """The envelope recipient of every accepted message, sorted."""
        return sorted(str(m["X-RcptTo"]) for m in self.messages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Start a real SMTP server on 127.0.0.1 around a given handler: `smtp_server(handler) -> port`."""
    started: list[Controller] = []

    def start(handler: FlakyInbox) -> int:
        controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
        controller.start()
        started.append(controller)
        return int(controller.port)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest) -> Engine:
    """The SQLite store, then a PostgreSQL one."""
    engine: Engine = request.getfixturevalue("store" if request.param == "sqlite" else "pg_store")
    return engine


def _config(channel: dict[str, Any], recipients: list[str], timeout: float = 10.0) -> AlertingConfig:
    return parse_alerting({"channels": [{"timeout": timeout, **channel}],
                           "rules": [{"name": "crit", "recipients": recipients}],
                           "group_wait_seconds": 0}, site=SITE)


def _email(port: int, timeout: float = 10.0) -> AlertingConfig:
    return _config({"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                    "from": "kansoku@example.com"}, MAIL, timeout)


def _sms(url: str) -> AlertingConfig:
    return _config({"name": "sms", "type": "sms", "account_sid": "AC42", "auth_token": "tok",
                    "from": "+15005550006", "api_url": url}, PHONES)


def _pipeline(config: AlertingConfig, store: Engine, clock: Any) -> tuple[AlertEngine, Dispatcher]:
    ids = iter(f"key-{n}" for n in range(1, 100))
    return (AlertEngine(config, store, clock=clock, new_id=lambda: next(ids)),
            Dispatcher(config, store, clock=clock, rng=lambda: 0.5))


def _rows(store: Engine) -> list[tuple[str, list[str], str | None]]:
    """(status, recipients recorded as reached, last error) of each outbox row, by id."""
    with store.connect() as conn:
        rows = conn.execute(select(outbox_table.c.status, outbox_table.c.payload, outbox_table.c.last_error)
                            .order_by(outbox_table.c.id)).all()
    return [(status, payload.get("delivered", []), error) for status, payload, error in rows]


def _attempts(store: Engine) -> list[tuple[bool, int | None, str | None]]:
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(delivery_attempts.c.ok, delivery_attempts.c.status_code, delivery_attempts.c.error)
            .order_by(delivery_attempts.c.id))]


def _numbers(receiver: Any) -> list[str]:
    return [parse_qs(r.body.decode())["To"][0] for r in receiver.requests]


def _twilio(sid: str, status: int = 201) -> tuple[int, dict[str, str], bytes]:
    return (status, JSON, b'{"sid": "%s", "status": "queued"}' % sid.encode())


@pytest.mark.parametrize("phase", ["RCPT", "DATA"])
def test_email_retry_skips_recipients_already_reached(
    kit: Any, store: Engine, clock: Any, smtp_server: Any, phase: str
) -> None:
    """A 451 for one address (at RCPT or at DATA): the retry mails only it; everyone gets one message."""
    inbox = FlakyInbox(phase=phase, flaky=("b@example.com",))
    engine, dispatcher = _pipeline(_email(smtp_server(inbox)), store, clock)
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    assert inbox.received() == ["a@example.com", "c@example.com"]
    [(status, delivered, error)] = _rows(store)
    assert (status, delivered) == ("pending", ["a@example.com", "c@example.com"])
    assert error is not None and error.startswith(
        "email: 1 of 3 recipients not reached: b@example.com: "
        "SMTP server answered 451: 4.3.0 try again later")
    assert error.endswith("; reached: a@example.com, c@example.com")
    clock.advance(LATER)
    dispatcher.run_once()
    assert inbox.received() == MAIL
    assert [status for status, _, _ in _rows(store)] == ["sent"]
    assert [(ok, code) for ok, code, _ in _attempts(store)] == [(False, 451), (True, None)]


def test_email_permanent_refusal_dead_letters_and_manual_retry_skips_the_reached(
    kit: Any, store: Engine, clock: Any, smtp_server: Any
) -> None:
    """A 550 for one address still makes the row dead (the others got it); the API retry mails only it."""
    inbox = FlakyInbox(refused=("b@example.com",))
    engine, dispatcher = _pipeline(_email(smtp_server(inbox)), store, clock)
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [(status, delivered, error)] = _rows(store)
    assert (status, delivered) == ("dead", ["a@example.com", "c@example.com"])
    assert error is not None and "b@example.com: SMTP server answered 550: 5.1.1 no such mailbox" in error
    inbox.refused.clear()  # the mailbox was fixed; someone retries the dead row from the dashboard
    with store.connect() as conn:
        row_id = conn.execute(select(outbox_table.c.id)).scalar_one()
    assert outbox.retry_dead(store, row_id, clock())
    dispatcher.run_once()
    assert inbox.received() == MAIL
    assert [status for status, _, _ in _rows(store)] == ["sent"]


def test_email_timed_out_attempt_keeps_the_recipients_it_reached(
    kit: Any, store: Engine, clock: Any, smtp_server: Any
) -> None:
    """An attempt cut by the channel timeout while one address hangs still records who it reached."""
    inbox = FlakyInbox(stall=("b@example.com",))
    engine, dispatcher = _pipeline(_email(smtp_server(inbox), timeout=0.5), store, clock)
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [(status, delivered, error)] = _rows(store)
    assert (status, delivered) == ("pending", ["a@example.com"])
    assert error is not None and "a@example.com" in error and "b@example.com" not in delivered
    clock.advance(LATER)
    dispatcher.run_once()
    assert inbox.received() == MAIL
    assert [status for status, _, _ in _rows(store)] == ["sent"]


def test_sms_retry_posts_only_numbers_not_reached(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """Twilio 500 for one number: the other numbers are still sent; the retry posts only the failed one."""
    receiver.responses = [_twilio("SM1"), (500, {}, b"upstream busy"), _twilio("SM3")]
    receiver.default = _twilio("SM2")
    engine, dispatcher = _pipeline(_sms(receiver.url), store, clock)
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    [(status, delivered, error)] = _rows(store)
    assert (status, delivered) == ("pending", [PHONES[0], PHONES[2]])
    assert error == (f"SMS: 1 of 3 recipients not reached: {PHONES[1]}: "
                     f"Twilio answered HTTP 500: upstream busy; reached: {PHONES[0]}, {PHONES[2]}")
    clock.advance(LATER)
    dispatcher.run_once()
    assert _numbers(receiver) == [*PHONES, PHONES[1]]
    assert [status for status, _, _ in _rows(store)] == ["sent"]
    with store.connect() as conn:
        assert conn.execute(select(outbox_table.c.provider_ref)).scalar() == "SM2"


def test_sms_permanent_only_when_every_failure_is(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """A 400 beside a 500 is retried; once only the 400 number is left, the row is dead, nobody twice."""
    bad = (400, JSON, b'{"code": 21211, "message": "The To number is not valid"}')
    receiver.responses = [bad, (500, {}, b"busy"), _twilio("SM3"), bad, _twilio("SM2")]
    engine, dispatcher = _pipeline(_sms(receiver.url), store, clock)
    engine.on_error(kit.event(), kit.change())
    dispatcher.run_once()
    assert [status for status, _, _ in _rows(store)] == ["pending"]
    clock.advance(LATER)
    dispatcher.run_once()
    assert _numbers(receiver) == [*PHONES, PHONES[0], PHONES[1]]
    [(status, delivered, error)] = _rows(store)
    assert (status, delivered) == ("dead", [PHONES[2], PHONES[1]])
    assert error is not None and error.startswith(f"SMS: 1 of 2 recipients not reached: {PHONES[0]}: "
                                                  "Twilio answered HTTP 400")


def test_progress_survives_a_new_dispatcher(
    kit: Any, any_store: Engine, clock: Any, receiver: Any
) -> None:
    """The reached numbers are read from the store: a new dispatcher on a new engine skips them too."""
    receiver.responses = [_twilio("SM1"), (503, {}, b"busy")]
    receiver.default = _twilio("SM9")
    config = _sms(receiver.url)
    engine, first = _pipeline(config, any_store, clock)
    engine.on_error(kit.event(), kit.change())
    first.run_once()
    # 503 is the server's answer for that number, so the third one is still tried.
    assert _numbers(receiver) == PHONES
    other = create_store_engine(any_store.url.render_as_string(hide_password=False))
    try:
        later = kit.Clock(clock() + LATER)
        restarted = Dispatcher(config, other, clock=later, worker_id="another-process")
        assert restarted.run_once() == 1
        assert _numbers(receiver) == [*PHONES, PHONES[1]]
        [(status, delivered, _)] = _rows(other)
        assert (status, delivered) == ("sent", [PHONES[0], PHONES[2]])
    finally:
        other.dispose()


def test_combined_rows_record_progress_on_every_row(
    kit: Any, store: Engine, clock: Any, receiver: Any
) -> None:
    """Two groups sent as one message: both rows record the reached numbers; the retry posts only the rest."""
    receiver.responses = [_twilio("SM1"), (500, {}, b"busy")]
    receiver.default = _twilio("SM9")
    engine, dispatcher = _pipeline(_sms(receiver.url), store, clock)
    engine.on_error(kit.event("g1"), kit.change("g1"))
    engine.on_error(kit.event("g2"), kit.change("g2", group_id=8))
    assert dispatcher.run_once() == 2
    assert [(s, d) for s, d, _ in _rows(store)] == [("pending", [PHONES[0], PHONES[2]])] * 2
    clock.advance(LATER)
    assert dispatcher.run_once() == 2
    assert _numbers(receiver) == [*PHONES, PHONES[1]]
    assert "2 error groups" in parse_qs(receiver.requests[-1].body.decode())["Body"][0]
    assert [status for status, _, _ in _rows(store)] == ["sent", "sent"]


def test_a_new_group_does_not_join_a_retry(
    kit: Any, store: Engine, clock: Any, receiver: Any
) -> None:
    """The retry goes as the same message to the numbers it missed; a new group to every number, apart."""
    receiver.responses = [_twilio("SM1"), (500, {}, b"busy")]
    receiver.default = _twilio("SM9")
    engine, dispatcher = _pipeline(_sms(receiver.url), store, clock)
    engine.on_error(kit.event("g1"), kit.change("g1"))
    dispatcher.run_once()
    clock.advance(LATER)
    engine.on_error(kit.event("g2"), kit.change("g2", group_id=8))
    assert dispatcher.run_once() == 2
    assert sorted(_numbers(receiver)[3:]) == sorted([PHONES[1], *PHONES])
    assert not any("2 error groups" in parse_qs(r.body.decode())["Body"][0] for r in receiver.requests)
    assert [status for status, _, _ in _rows(store)] == ["sent", "sent"]


def test_a_new_row_does_not_inherit_progress(store: Engine, clock: Any) -> None:
    """enqueue drops the reached recipients of a payload it is given (a resolution copies its trigger's)."""
    with write_transaction(store) as conn:
        outbox.enqueue(conn, channel="c", rule="r", group_key="g", kind="resolve", idempotency_key="k",
                       payload={"item": {"title": "t"}, "recipients": ["a@example.com"],
                                "delivered": ["a@example.com"]}, now=clock())
    with store.connect() as conn:
        payload = conn.execute(select(outbox_table.c.payload)).scalar_one()
    assert payload == {"item": {"title": "t"}, "recipients": ["a@example.com"]}
