"""ErrorTracker: capture on the caller's thread, everything else in one bounded background worker.

`capture()` costs a traceback walk, a cached fingerprint, a few rule checks and a queue put: no
I/O, no lock held by I/O. The worker expands frames (source context), redacts, runs the user's
processors, writes batches to the store (`EventWriter`), then calls the listeners (the alert
engine) and forwards to Sentry when configured. While the store is down, accepted events wait in a
bounded backlog and the write is retried with backoff; shutdown flushes what was accepted.
"""

from __future__ import annotations

import atexit
import socket
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import getrandbits
from typing import Any, Final

from opentelemetry import trace as otel_trace
from sqlalchemy import Engine

from kansoku._safety import suppress_internal_errors
from kansoku._worker import BackgroundWorker
from kansoku.context import get_context
from kansoku.errors import capture as cap
from kansoku.errors._delivery import Amend, Delivery
from kansoku.errors.breadcrumbs import MAX_MESSAGE, Breadcrumbs
from kansoku.errors.classify import CATEGORIES, SEVERITIES, Classifier, facts_of
from kansoku.errors.fingerprint import Fingerprinter
from kansoku.errors.fingerprint import parse_rules as parse_fingerprint_rules
from kansoku.logs import exception_of
from kansoku.redact import redactor_for
from kansoku.settings import Settings
from kansoku.typing import Clock, ErrorChange, ErrorEvent, ErrorProcessor, IdFactory, RequestInfo

__all__ = ["EVENT_ID_ATTRIBUTE", "ErrorListener", "ErrorTracker"]

EVENT_ID_ATTRIBUTE: Final = "_kansoku_event_id"
SNAPSHOT_ATTRIBUTE: Final = "__kansoku_snapshot__"  # set by kansoku.debug on exceptions it snapshotted
ErrorListener = Callable[[ErrorEvent, ErrorChange], None]
_ERROR_METHODS: Final = frozenset({"error", "critical", "exception", "fatal"})
_LOG_OWN_KEYS: Final = frozenset({
    "event", "level", "timestamp", "logger", "category", "service", "environment", "version", "exc_info",
    "exception", "request_id", "trace_id", "span_id", "event_id", "stack_info",
})
_CONTEXT_IDS: Final = ("request_id", "trace_id", "span_id")
_HOST: Final = socket.gethostname()


def _new_id() -> str:
    # A reference, not a secret (the API behind it needs the dashboard's auth): `random`'s fast
    # generator, like request ids; `uuid4` costs a getrandom() call, which on a busy host hands
    # the GIL to another thread in the middle of the request.
    return f"{getrandbits(128):032x}"


@dataclass(slots=True)
class Pending:
    """An accepted capture on its way to the worker: the event so far and the raw frames."""

    event: ErrorEvent
    chain: list[cap.RawException]


class ErrorTracker:
    """Captures exceptions into grouped, classified, redacted events in the store.

    `engine` None keeps everything but the store (processors, listeners, Sentry forwarding).
    `clock` and `new_id` are injectable so that tests can assert whole events. `linger`: how long
    the worker waits to gather a batch (one write of a hundred events costs about one of one).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None,
        *,
        clock: Clock = time.time,
        new_id: IdFactory = _new_id,
        processors: Sequence[ErrorProcessor] = (),
        in_app_include: Sequence[str] = (),
        in_app_exclude: Sequence[str] = (),
        breadcrumbs: int = 20,
        max_backlog: int | None = None,
        linger: float = 0.05,
        sentry_transport: Any = None,
    ) -> None:
        self.settings = settings
        self.service = settings.service
        self._clock = clock
        self._new_id = new_id
        self._processors: list[ErrorProcessor] = list(processors)
        self._listeners: list[Callable[[ErrorEvent, ErrorChange], None]] = []
        self.redactor = redactor_for(settings)
        self._locals_redactor = redactor_for(settings, max_string=256, max_depth=3, max_items=20)
        self.include_locals = settings.trace_level == "VERBOSE"
        self._in_app = cap.InApp(in_app_include, in_app_exclude)
        rules = parse_fingerprint_rules(settings.errors.get("fingerprint_rules", ()))
        self.fingerprinter = Fingerprinter(self.service, settings.environment, rules,
                                           scrub=self.redactor.redact_text)
        self.classifier = Classifier.from_config(settings.errors)
        self.breadcrumbs = Breadcrumbs(per_request=breadcrumbs)
        self.captured = 0
        self.dropped = 0
        self._delivery = Delivery(self, engine, settings, max_backlog=max_backlog or settings.queue_size * 5,
                                  linger=linger, sentry_transport=sentry_transport)
        self._worker = BackgroundWorker("errors", maxsize=settings.queue_size, batch=self._delivery.handle,
                                        max_batch=500)
        self._delivery.worker = self._worker
        self._atexit: Callable[[], None] | None = None

    # --- configuration --------------------------------------------------------------------------

    def add_processor(self, processor: ErrorProcessor) -> None:
        """Add an error-event processor: it gets each (redacted) event, returns it or None to drop."""
        self._processors.append(processor)

    @property
    def processors(self) -> list[ErrorProcessor]:
        """The error-event processors, in the order they run."""
        return self._processors

    def add_listener(self, listener: ErrorListener) -> None:
        """Call `listener(event, change)` after each event is stored (from the worker thread)."""
        self._listeners.append(listener)

    @property
    def listeners(self) -> list[ErrorListener]:
        """The listeners called after each stored event."""
        return self._listeners

    # --- capture --------------------------------------------------------------------------------

    def capture(
        self,
        exc: BaseException | None = None,
        *,
        request: RequestInfo | None = None,
        mechanism: str = "manual",
        handled: bool = True,
        fingerprint: Sequence[str] | str | None = None,
        severity: str | None = None,
        category: str | None = None,
        tags: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
        level: str = "error",
        culprit: str | None = None,
        **extra: Any,
    ) -> str:
        """Record `exc` (default: the exception being handled); its event id. Never raises.

        `culprit` names what failed in the list of groups (a job's name); default: the innermost
        in-app frame's `module.function`.

        An exception already captured (by the log processor, then the middleware...) returns the
        first event's id and makes no second event. "" when nothing was recorded: no exception,
        or the queue was full (the drop is counted).
        """
        if exc is None:
            exc = sys.exc_info()[1]
            if exc is None:
                return ""
        if culprit:
            extra["culprit"] = culprit
        return self._capture(exc, request, mechanism, handled, fingerprint, severity, category, tags, user,
                             level, extra)

    def _capture(
        self, exc: BaseException, request: RequestInfo | None, mechanism: str, handled: bool,
        fingerprint: Sequence[str] | str | None, severity: str | None, category: str | None,
        tags: dict[str, Any] | None, user: dict[str, Any] | None, level: str, extra: dict[str, Any],
    ) -> str:
        already = getattr(exc, EVENT_ID_ATTRIBUTE, None)
        if isinstance(already, str):
            if already and (request or not handled):  # logged first, now the middleware knows more
                self._worker.submit(Amend(already, request, handled))
            return already
        with suppress_internal_errors("errors.capture"):
            pending = self._snapshot(exc, request, mechanism, handled, fingerprint, severity, category,
                                     tags, user, level, extra)
            event_id = pending.event["event_id"]
            accepted = self._worker.submit(pending)
            self.captured += 1
            if not accepted:
                self.dropped += 1
                event_id = ""
            _mark(exc, event_id)
            return event_id
        return ""

    def _snapshot(
        self, exc: BaseException, request: RequestInfo | None, mechanism: str, handled: bool,
        fingerprint: Sequence[str] | str | None, severity: str | None, category: str | None,
        tags: dict[str, Any] | None, user: dict[str, Any] | None, level: str, extra: dict[str, Any],
    ) -> Pending:
        locals_of = self._local_values if self.include_locals else None
        chain = cap.snapshot_chain(exc, self._in_app, locals_of)
        raised = chain[-1]
        custom = [fingerprint] if isinstance(fingerprint, str) else fingerprint
        key, parts = self.fingerprinter.compute(
            lambda: [r.chain_frames() for r in chain], raised.message, list(custom) if custom else None,
            cache_key=cap.cache_key(chain))
        facts = facts_of(exc, raised.message, _status_of(exc, request, extra))
        event = ErrorEvent(
            event_id=self._new_id(), timestamp=self._clock(), exception_type=raised.type_name,
            message=raised.message, group_key=key, fingerprint_parts=parts,
            severity=(_checked(severity, SEVERITIES, "severity")  # type: ignore[typeddict-item]
                      or self.classifier.severity(facts)),
            category=_checked(category, CATEGORIES, "category") or self.classifier.category(facts),
            level=level, service=self.service, environment=self.settings.environment, host=_HOST,
            handled=handled, mechanism=mechanism,
        )
        if self.settings.version:
            event["release"] = self.settings.version
        if custom:
            event["fingerprint"] = [str(v) for v in custom]
        culprit = extra.pop("culprit", None)
        if culprit:
            event["culprit"] = str(culprit)
        snapshot = extra.pop("snapshot", None) or getattr(exc, SNAPSHOT_ATTRIBUTE, None)
        if isinstance(snapshot, dict):  # from kansoku.debug (`traced` at VERBOSE): joins the event
            event["snapshot"] = snapshot
        self._add_context(event, request, tags, user, extra)
        return Pending(event, chain)

    def _local_values(self, values: dict[str, Any]) -> dict[str, Any]:
        picked = {k: v for k, v in list(values.items())[: cap.MAX_LOCALS] if not k.startswith("__")}
        return dict(self._locals_redactor.redact(picked))

    def _add_context(
        self, event: ErrorEvent, request: RequestInfo | None, tags: dict[str, Any] | None,
        user: dict[str, Any] | None, extra: dict[str, Any],
    ) -> None:
        bound = get_context()
        for name in _CONTEXT_IDS:
            value = extra.pop(name, None) or bound.get(name)
            if value:
                event[name] = str(value)
        if "trace_id" not in event:
            span = otel_trace.get_current_span().get_span_context()
            if span.is_valid:
                event["trace_id"] = format(span.trace_id, "032x")
                event["span_id"] = format(span.span_id, "016x")
        user_id = extra.pop("user_id", None) or bound.get("user_id")
        user = user if isinstance(user, dict) else bound.get("user")
        if user_id or isinstance(user, dict):
            event["user"] = {**({"id": str(user_id)} if user_id else {}), **(user or {})}
        if request:
            event["request"] = request
        if tags:
            event["tags"] = {str(k): str(v) for k, v in tags.items()}
        rest = {k: v for k, v in bound.items() if k not in _CONTEXT_IDS and k not in ("user_id", "user")}
        if rest:
            extra = {**extra, "context": rest}
        if extra:
            event["extra"] = extra
        request_id = event.get("request_id")
        if request_id:
            crumbs = self.breadcrumbs.get(request_id)
            if crumbs:
                event["breadcrumbs"] = crumbs

    def submit_event(self, event: ErrorEvent) -> bool:
        """Queue an event made elsewhere (ingested from another SDK), grouped and classified already.

        It then goes the way of captured events: redaction, processors, the store, listeners.
        False when the queue is full (the drop is counted): the caller must not acknowledge it.
        """
        accepted = self._worker.submit(Pending(event, []))
        self.captured += 1
        if not accepted:
            self.dropped += 1
        return accepted

    # --- log processors -------------------------------------------------------------------------

    def log_processor(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """structlog processor: an ERROR+ record with `exc_info` becomes an event; adds `event_id`.

        Goes after `stamp` (for the context) and before the exception is formatted.
        """
        if method_name not in _ERROR_METHODS:
            return event_dict
        exc = exception_of(event_dict.get("exc_info"))
        name = str(event_dict.get("logger", ""))
        if exc is None or (name.startswith("kansoku") and not name.startswith("kansoku.demo")):
            return event_dict
        fields = {k: v for k, v in event_dict.items() if k not in _LOG_OWN_KEYS}
        extra = {"logger": name, "log_message": cap.safe_str(event_dict.get("event", ""))[:MAX_MESSAGE],
                 **dict(list(fields.items())[:30])}
        category, severity = event_dict.get("category"), extra.pop("severity", None)
        event_id = self._capture(
            exc, None, "logging", True, None, severity if severity in SEVERITIES else None,
            category if category in CATEGORIES and category != "application" else None, None, None,
            "fatal" if method_name in ("critical", "fatal") else "error", extra,
        )
        if event_id:
            event_dict["event_id"] = event_id
        return event_dict

    def breadcrumb_processor(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """structlog processor: remember the record as a breadcrumb of its request.

        Not the access-log line: it is the request's last, written when nothing can fail any more.

        Not the records that become events themselves (ERROR+ with exc_info), so the order of
        this processor and `log_processor` in the chain does not matter.
        """
        request_id = event_dict.get("request_id")
        if (request_id and event_dict.get("logger") != ACCESS_LOGGER
                and not (method_name in _ERROR_METHODS and event_dict.get("exc_info"))):
            self.breadcrumbs.add(str(request_id), {
                "timestamp": self._clock(), "level": method_name, "logger": str(event_dict.get("logger", "")),
                "message": cap.safe_str(event_dict.get("event", ""))[:MAX_MESSAGE],
                "category": str(event_dict.get("category", "")),
            })
        return event_dict

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and flush at interpreter exit (the worker thread is a daemon)."""
        self._worker.submit(Delivery.TICK)
        if self._atexit is None:
            ref = weakref.ref(self)

            def flush_at_exit() -> None:
                tracker = ref()
                if tracker is not None:
                    tracker.close(timeout=5.0)

            self._atexit = flush_at_exit
            atexit.register(flush_at_exit)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every accepted event is stored (or dropped); False on timeout."""
        return self._worker.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (retrying the store until `timeout`), then stop the worker; False if events were lost."""
        self._delivery.closing = True
        flushed = self._worker.close(timeout)
        lost = self._delivery.abandon(queued=0 if flushed else self._worker.depth)
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        return flushed and lost == 0

    def problem(self) -> str | None:
        """None when healthy; else what is wrong (store failing, queue nearly full), for /ready."""
        problem = self._delivery.problem()
        if problem is None and self._worker.depth >= 0.9 * self._worker.maxsize:
            problem = f"error queue nearly full ({self._worker.depth}/{self._worker.maxsize})"
        return problem

    def stats(self) -> dict[str, int]:
        """Counters for metrics: captured, dropped, stored, waiting, store failures, rejected."""
        return {"captured": self.captured, "dropped": self.dropped, "queued": self._worker.depth,
                **self._delivery.stats()}


ACCESS_LOGGER = "kansoku.access"  # the middleware's access-log logger


def _mark(exc: BaseException, event_id: str) -> None:
    try:
        setattr(exc, EVENT_ID_ATTRIBUTE, event_id)
    except (AttributeError, TypeError):  # an exception class with __slots__: no dedup for it
        pass


def _checked(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is not None and value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _status_of(exc: BaseException, request: RequestInfo | None, extra: dict[str, Any]) -> int | None:
    from_request = (request or {}).get("status_code")
    for value in (from_request, extra.get("status_code"), getattr(exc, "status_code", None)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
