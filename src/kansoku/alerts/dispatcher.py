"""The dispatcher: takes due outbox rows, sends them, records every attempt.

Runs as a task in the app (`await run()`, `stop()`) or in `kansoku worker`; `run_once()` does one
pass synchronously (tests, cron). Rows of one rule for one channel that are due together go out as
one message. Each channel has its own timeout, so a channel that hangs delays only itself; store
work runs in threads so the event loop (the app's, in-process) never waits on the database.

Partial deliveries: a channel with several recipients (e-mail, SMS) appends each one it reaches to
the notification's `done` list; when the attempt fails, those are stored on every row of the
message (`outbox.mark_failed(delivered=...)`) and skipped by every later attempt. They are stored
when the attempt ends, in the transaction that puts the rows back in the queue, not one write per
recipient: the progress and the status change are atomic, a channel never touches the store, and
timeouts are covered (the list survives the cancelled send). The price: a process killed in the
middle of an attempt loses that attempt's progress, so the next one repeats the recipients of that
attempt only, never those of earlier attempts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine

from kansoku._safety import suppress_internal_errors
from kansoku.alerts import outbox
from kansoku.alerts.channels import Channel, DeliveryError, build_channel, name_list
from kansoku.alerts.engine import AlertEngine
from kansoku.alerts.render import MESSAGE, Notification, combine, probe_notification
from kansoku.alerts.rules import AlertingConfig, load_alerting
from kansoku.logs import get_logger
from kansoku.settings import Settings
from kansoku.tracing import untraced
from kansoku.typing import Clock

if TYPE_CHECKING:
    import httpx

__all__ = ["Dispatcher", "TestResult", "send_test"]

log = get_logger("kansoku.alerts")
_NEEDS_REF: Final = frozenset({"slack"})


@dataclass(frozen=True)
class Outcome:
    """What one send did."""

    ok: bool
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    permanent: bool = False
    ref: str | None = None
    duration_ms: float = 0.0
    reached: tuple[str, ...] = ()  # recipients this attempt reached (a partial failure's progress)
    message_key: str | None = None  # the Idempotency-Key the attempt was sent under


class Dispatcher:
    """Delivers outbox rows with retries; one per process is enough, several are safe."""

    def __init__(
        self, source: Settings | AlertingConfig, engine: Engine, *, alert_engine: AlertEngine | None = None,
        client: httpx.AsyncClient | None = None, channels: Mapping[str, Channel] | None = None,
        clock: Clock = time.time, worker_id: str | None = None, batch: int = 100,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = load_alerting(source) if isinstance(source, Settings) else source
        self.engine = engine
        self.alert_engine = alert_engine
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.batch = batch
        self.rng = rng
        self._client = client
        self._channels = dict(channels) if channels is not None else None
        self._stop = asyncio.Event()
        self._lease = max((c.timeout for c in self.config.channels.values()), default=10.0) * 3 + 30

    # --- loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stop()`: tick the engine, send what is due, sleep `poll_seconds`."""
        self._stop = asyncio.Event()
        async with self._session() as session:
            while not self._stop.is_set():
                with suppress_internal_errors("alerts.dispatcher"):
                    if self.alert_engine is not None:
                        await asyncio.to_thread(self.alert_engine.tick)
                    await self._dispatch(session)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.config.poll_seconds)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        """Ask `run()` to return after the current pass."""
        self._stop.set()

    def run_once(self) -> int:
        """One pass, synchronously (not from inside a running event loop); returns rows handled."""
        return asyncio.run(self.dispatch_once())

    async def dispatch_once(self) -> int:
        """One pass from async code: claim due rows, send them, mark them; returns rows handled."""
        async with self._session() as session:
            return await self._dispatch(session)

    # --- one pass ---------------------------------------------------------------------------------

    def _session(self) -> _Session:
        return _Session(self)

    async def _dispatch(self, session: _Session) -> int:
        now = self.clock()
        rows = await asyncio.to_thread(outbox.claim, self.engine, self.worker_id, now, limit=self.batch,
                                       lease=self._lease)
        if not rows:
            return 0
        channels = session.channels()
        batches: dict[tuple[Any, ...], list[outbox.OutboxRow]] = {}
        for row in rows:
            # Triggers of one rule for one channel go out together, but a row that already went
            # out in a message (which failed) goes again in that message only, under its key: a
            # receiver that did process it recognises it.
            key: tuple[Any, ...] = (row.channel, row.rule, row.kind, row.payload.get(MESSAGE)) \
                if row.kind == "trigger" else (row.id,)
            batches.setdefault(key, []).append(row)
        await asyncio.gather(*(self._deliver(channels, batch) for batch in batches.values()))
        return len(rows)

    async def _deliver(self, channels: Mapping[str, Channel], rows: Sequence[outbox.OutboxRow]) -> None:
        first = rows[0]
        ids = [row.id for row in rows]
        channel = channels.get(first.channel)
        if channel is None:
            outcome = Outcome(False, f"no channel named {first.channel!r} is configured now", permanent=True)
        else:
            note = await self._notification(rows)
            outcome = await _attempt(channel, note)
            outcome = dataclasses.replace(outcome, message_key=note["idempotency_key"])
        await asyncio.to_thread(self._record, rows, ids, outcome)

    async def _notification(self, rows: Sequence[outbox.OutboxRow]) -> Notification:
        first = rows[0]
        key = first.payload.get(MESSAGE)  # a retry: the key of the message these rows went out in
        if not key:
            key = first.idempotency_key if len(rows) == 1 else hashlib.sha256(
                "|".join(sorted(r.idempotency_key for r in rows)).encode()).hexdigest()[:40]
        ref = None
        config = self.config.channels.get(first.channel)
        if first.kind == "resolve" and config is not None and config.type in _NEEDS_REF:
            ref = await asyncio.to_thread(outbox.find_ref, self.engine, channel=first.channel,
                                          rule=first.rule, group_key=first.group_key)
        return combine(first.kind, [row.payload for row in rows], idempotency_key=key,
                       created_at=min(row.created_at for row in rows), ref=ref)

    def _record(self, rows: Sequence[outbox.OutboxRow], ids: list[int], outcome: Outcome) -> None:
        now = self.clock()
        outbox.record_attempt(self.engine, ids, now, ok=outcome.ok, status_code=outcome.status_code,
                              error=outcome.error, duration_ms=outcome.duration_ms)
        if outcome.ok:
            outbox.mark_sent(self.engine, ids, self.worker_id, now, outcome.ref)
            return
        config = self.config.channels.get(rows[0].channel)
        max_attempts = config.max_attempts if config is not None else 1
        status = outbox.mark_failed(
            self.engine, ids, self.worker_id, now, outcome.error or "failed",
            attempts=max(r.attempts for r in rows), max_attempts=max_attempts,
            retry_after=outcome.retry_after, permanent=outcome.permanent, rng=self.rng,
            delivered=outcome.reached, message_key=outcome.message_key,
        )
        log.warning("alert delivery failed", channel=rows[0].channel, rule=rows[0].rule, rows=len(rows),
                    error=outcome.error, next=status, reached=len(outcome.reached))


class _Session:
    """The channels of one run, over one HTTP client (made here unless one was given).

    Both are made when the first row is to be sent: a process that has nothing to deliver (most
    workers, most of the time) never imports httpx and the channel modules.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.owned: httpx.AsyncClient | None = None
        self._channels: Mapping[str, Channel] | None = dispatcher._channels

    async def __aenter__(self) -> _Session:
        return self

    def channels(self) -> Mapping[str, Channel]:
        """The configured channels by name, built on the first call."""
        if self._channels is None:
            d = self.dispatcher
            client = d._client
            if client is None:
                import httpx

                client = self.owned = httpx.AsyncClient(follow_redirects=False)
            site, clock = d.config.site, d.clock
            self._channels = {name: build_channel(cfg, client, site, clock) for name, cfg in d.config.channels.items()}
        return self._channels

    async def __aexit__(self, *exc: object) -> None:
        if self.owned is not None:
            await self.owned.aclose()


async def _attempt(channel: Channel, note: Notification) -> Outcome:
    """Send once under the channel's timeout (for the whole attempt); never raises."""
    started = time.perf_counter()
    before = set(note["done"])
    try:
        with untraced():  # kansoku's own HTTP calls are not the app's traffic (no client spans)
            ref = await asyncio.wait_for(channel.send(note), timeout=channel.timeout)
        outcome = Outcome(True, ref=ref)
    except DeliveryError as exc:  # a channel's own error already names the recipients it missed
        outcome = Outcome(False, str(exc), exc.status_code, exc.retry_after, exc.permanent)
    except TimeoutError:
        outcome = Outcome(False, f"{channel.name}: no answer within {channel.timeout:g} s"
                          + _reached_text(note, before))
    except Exception as exc:  # a bug or an unexpected library error: retry, and keep the reason
        outcome = Outcome(False, f"{type(exc).__name__}: {exc}"[:300] + _reached_text(note, before))
    reached = tuple(r for r in note["done"] if r not in before)
    return dataclasses.replace(outcome, reached=reached, duration_ms=(time.perf_counter() - started) * 1000)


def _reached_text(note: Notification, before: set[str]) -> str:
    """For the delivery log: who a cut-short attempt reached before it stopped."""
    reached = [r for r in note["done"] if r not in before]
    return f"; reached before that: {name_list(reached)}" if reached else ""


@dataclass(frozen=True)
class TestResult:
    """What `kansoku alerts test CHANNEL` prints."""

    __test__ = False  # not a pytest test class

    channel: str
    ok: bool
    error: str | None = None
    detail: str | None = None


def send_test(
    channel_name: str, settings: Settings, *, client: httpx.AsyncClient | None = None
) -> TestResult:
    """Send a test notification through one channel, now, bypassing the outbox."""
    config = load_alerting(settings)
    if channel_name not in config.channels:
        known = ", ".join(config.channels) or "none"
        return TestResult(channel_name, False, f"no channel named {channel_name!r}; configured: {known}")
    cfg = config.channels[channel_name]
    recipients = list(getattr(cfg, "recipients", ()))
    note = probe_notification(channel_name, config.site, time.time(), recipients)

    async def go() -> Outcome:
        import httpx

        async with httpx.AsyncClient() if client is None else _borrowed(client) as http:
            return await _attempt(build_channel(cfg, http, config.site), note)

    outcome = asyncio.run(go())
    detail = f"sent via {cfg.type}" + (f" (ref {outcome.ref})" if outcome.ref else "")
    return TestResult(channel_name, outcome.ok, outcome.error, detail if outcome.ok else None)


class _borrowed:
    """An async context manager that lends a client without closing it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None
