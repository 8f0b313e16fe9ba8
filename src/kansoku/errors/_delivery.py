"""The worker side of the ErrorTracker: prepare, store with retries, notify, forward.

Runs only in the tracker's BackgroundWorker thread. Events the worker has taken from the queue
wait in a bounded backlog until the store accepts them: a store that is down is retried with
backoff (the queue keeps accepting meanwhile, up to its bound), a batch the store rejects is split
so that one bad event cannot hold the others back.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from kansoku._safety import report_internal_error
from kansoku._worker import BackgroundWorker
from kansoku.errors import capture as cap
from kansoku.exceptions import StoreError
from kansoku.logs import get_logger
from kansoku.settings import Settings
from kansoku.store.writer import EventWriter, title_of
from kansoku.typing import ErrorChange, ErrorEvent, RequestInfo

if TYPE_CHECKING:
    from kansoku.errors.sentry import SentryForwarder
    from kansoku.errors.tracker import ErrorTracker, Pending

__all__ = ["Delivery"]

log = get_logger("kansoku.errors")
BATCH: Final = 500
_OWN_FIELDS: Final = frozenset({
    "event_id", "timestamp", "exception_type", "group_key", "severity", "category", "level", "request_id",
    "trace_id", "span_id", "service", "environment", "release", "host", "handled", "mechanism",
})


class _Tick:
    """Queue marker: wake the worker to retry the backlog."""


@dataclass(slots=True)
class Amend:
    """What a second capture of the same exception adds to its event, if not yet stored.

    The log line comes first (no request, handled); the middleware then sees the same exception
    escape the app with the request. One event, with both.
    """

    event_id: str
    request: RequestInfo | None
    handled: bool


class Delivery:
    """Prepares captured events and delivers them to the store, the listeners and Sentry."""

    TICK: Final = _Tick()

    def __init__(
        self,
        tracker: ErrorTracker,
        engine: Engine | None,
        settings: Settings,
        *,
        max_backlog: int,
        linger: float = 0.05,
        sentry_transport: Any = None,
    ) -> None:
        self.tracker = tracker
        self.engine = engine
        self.settings = settings
        self.writer = None
        if engine is not None:
            self.writer = EventWriter(engine, max_events_per_group=settings.max_events_per_group)
        self.sentry: SentryForwarder | None = None
        if settings.sentry_dsn is not None:
            from kansoku.errors.sentry import SentryForwarder

            self.sentry = SentryForwarder(settings.sentry_dsn.get_secret_value(), settings=settings,
                                          transport=sentry_transport)
        self.worker: BackgroundWorker | None = None
        self.closing = False
        self.backlog: deque[ErrorEvent] = deque()
        self.max_backlog = max_backlog
        self.frames = cap.FrameExpander(tracker.redactor.redact_text)
        self.linger = linger
        self._oldest_at = 0.0
        self.counts = {"stored": 0, "store_failures": 0, "rejected": 0, "lost": 0, "filtered": 0}
        self._failing_since: float | None = None
        self._last_error = ""
        self._backoff = 0.0
        self._pause = threading.Event()  # never set: an interruptible sleep
        if hasattr(os, "register_at_fork"):  # a forked worker process must not store the parent's events
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _forget_parent(ref))

    # --- the worker's batch handler -------------------------------------------------------------

    def handle(self, items: list[Any]) -> None:
        """BackgroundWorker batch handler: prepare new events, then store the backlog.

        A write costs about the same for one event as for a hundred, so a small backlog lingers a
        moment (the GIL released) to gather the events still coming: a TICK queued behind them
        brings the worker back, and `flush()` still waits for it.
        """
        for item in items:
            if isinstance(item, _Tick):
                continue
            if isinstance(item, Amend):
                self._amend(item)
                continue
            event = self._prepare(item)
            if event is not None:
                self._keep(event)
        if self.backlog and self._should_linger():
            return
        self._drain()

    def _should_linger(self) -> bool:
        waited = time.monotonic() - self._oldest_at
        if self.closing or len(self.backlog) >= BATCH or waited >= self.linger or self.worker is None:
            return False
        self._pause.wait(self.linger - waited)
        return self.worker.submit(self.TICK)

    def _prepare(self, pending: Pending) -> ErrorEvent | None:
        try:
            return self._process(self._complete(pending), pending)
        except Exception as exc:  # a bug here must not stop the worker; the event is lost, counted
            report_internal_error("errors.prepare", exc)
            self.counts["lost"] += 1
            return None

    def _complete(self, pending: Pending) -> ErrorEvent:
        """Frames with source, culprit, title; everything a user may have put in, redacted."""
        redactor = self.tracker.redactor
        event = pending.event
        # An ingested event (no raw chain) arrives with its frames as data: redacted like the rest.
        exceptions = (self.frames.expand(pending.chain) if pending.chain
                      else redactor.redact(event.get("exceptions", [])))
        event["exceptions"] = exceptions
        event["message"] = exceptions[-1]["message"] if exceptions else redactor.redact_text(event["message"])
        event["culprit"] = redactor.redact_text(event["culprit"]) if "culprit" in event else cap.culprit_of(exceptions)
        for name in ("request", "user", "tags", "extra", "breadcrumbs", "snapshot"):
            if name in event:
                event[name] = redactor.redact(event[name])
        event["fingerprint_parts"] = [redactor.redact_text(p) for p in event["fingerprint_parts"]]
        if "fingerprint" in event:
            event["fingerprint"] = [redactor.redact_text(p) for p in event["fingerprint"]]
        event["title"] = title_of(event)
        return event

    def _process(self, event: ErrorEvent, pending: Pending) -> ErrorEvent | None:
        """Run the user's processors; redact again what they may have added; regroup if asked."""
        processors = self.tracker.processors
        if not processors:
            return event
        before = list(event.get("fingerprint", []))
        for processor in list(processors):
            try:
                result = processor(event)
            except Exception as exc:  # the user's bug: keep the event as it was, report once
                report_internal_error("errors.processor", exc)
                continue
            if result is None:
                self.counts["filtered"] += 1
                return None
            event = result
        redactor = self.tracker.redactor
        for key, value in list(event.items()):
            if key not in _OWN_FIELDS:
                event[key] = redactor.redact(value)  # type: ignore[literal-required]
        fingerprint = event.get("fingerprint")
        if fingerprint and list(fingerprint) != before:
            chain = [r.chain_frames() for r in pending.chain]
            key, parts = self.tracker.fingerprinter.compute(chain, event.get("message", ""),
                                                            [str(v) for v in fingerprint])
            event["group_key"], event["fingerprint_parts"] = key, [redactor.redact_text(p) for p in parts]
        return event

    def _amend(self, amend: Amend) -> None:
        for index, event in enumerate(reversed(self.backlog)):
            if index >= 1_000:  # long stored already: leave it as it is
                return
            if event["event_id"] == amend.event_id:
                if amend.request and "request" not in event:
                    event["request"] = self.tracker.redactor.redact(amend.request)
                if not amend.handled:
                    event["handled"] = False
                return

    def _keep(self, event: ErrorEvent) -> None:
        if not self.backlog:
            self._oldest_at = time.monotonic()
        if len(self.backlog) >= self.max_backlog:
            self.backlog.popleft()
            self.counts["lost"] += 1
            report_internal_error("errors.backlog", StoreError(
                f"error backlog full ({self.max_backlog} events waiting for the store): "
                "oldest event dropped"))
        self.backlog.append(event)

    # --- storing --------------------------------------------------------------------------------

    def _drain(self) -> None:
        while self.backlog:
            batch = [self.backlog[i] for i in range(min(BATCH, len(self.backlog)))]
            try:
                changes = self._write(batch)
            except Exception as exc:
                self._failed(exc)
                return
            for _ in batch:
                self.backlog.popleft()
            self.counts["stored"] += len(batch) if self.writer is not None else 0
            self._recovered()
            self._after(batch, changes)

    def _write(self, batch: Sequence[ErrorEvent]) -> list[ErrorChange | None]:
        if self.writer is None:
            return [None] * len(batch)
        if len(batch) == 1:
            return [self._write_one(batch[0])]
        try:
            return list(self.writer.write(batch))
        except (IntegrityError, DataError):
            # The store is up but refuses something in this batch: find it, keep the rest.
            return [self._write_one(event) for event in batch]

    def _write_one(self, event: ErrorEvent) -> ErrorChange | None:
        """Write one event; one the store refuses (a duplicate id, bad data) is dropped and counted."""
        assert self.writer is not None
        try:
            return self.writer.write([event])[0]
        except (IntegrityError, DataError) as exc:
            self.counts["rejected"] += 1
            report_internal_error("errors.store.rejected", exc)
            return None

    def _failed(self, exc: BaseException) -> None:
        self.counts["store_failures"] += 1
        report_internal_error("errors.store", exc)
        text = str(exc).strip().splitlines()
        self._last_error = f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
        if self._failing_since is None:
            self._failing_since = time.time()
            log.error("error store unavailable: events are kept in memory and retried",
                      problem=self._last_error, waiting=len(self.backlog))
        self._backoff = min(max(self._backoff * 2, 0.05), 0.2 if self.closing else 2.0)
        self._pause.wait(self._backoff)
        if self.worker is not None:
            self.worker.submit(self.TICK)  # come back to the backlog even if nothing new arrives

    def _recovered(self) -> None:
        self._backoff = 0.0
        if self._failing_since is not None:
            down = time.time() - self._failing_since
            self._failing_since = None
            log.warning("error store available again", down_seconds=round(down, 3), waiting=len(self.backlog))

    def _after(self, batch: Sequence[ErrorEvent], changes: Sequence[ErrorChange | None]) -> None:
        for event, change in zip(batch, changes, strict=True):
            if change is not None:
                for listener in list(self.tracker.listeners):
                    try:
                        listener(event, change)
                    except Exception as exc:
                        report_internal_error("errors.listener", exc)
            if self.sentry is not None:
                try:
                    self.sentry.forward(event)
                except Exception as exc:
                    report_internal_error("errors.sentry", exc)

    # --- state ----------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """The store problem, if the last write failed."""
        if self._failing_since is None:
            return None
        return (f"error store failing for {time.time() - self._failing_since:.0f} s ({self._last_error}); "
                f"{len(self.backlog)} events waiting in memory")

    def abandon(self, queued: int = 0) -> int:
        """After the worker stopped: count (and report) the events that never reached the store."""
        lost = len(self.backlog) + queued
        self.backlog.clear()
        if self.sentry is not None:
            self.sentry.close(timeout=2.0)
        if lost:
            self.counts["lost"] += lost
            report_internal_error("errors.shutdown",
                                  StoreError(f"{lost} error events not stored at shutdown"))
        return lost

    def stats(self) -> dict[str, int]:
        """The delivery counters and the backlog size."""
        return {**self.counts, "waiting": len(self.backlog)}


def _forget_parent(ref: weakref.ReferenceType[Delivery]) -> None:
    delivery = ref()
    if delivery is not None:
        delivery.backlog.clear()
        delivery._failing_since = None
