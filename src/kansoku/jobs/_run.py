"""One run of a job: its span, its log context, its metrics and, when it raises, its error event.

A run is the `StepHooks` of the one wrapper builder (`kansoku._delegate.wrap`): `resume` makes
its span current and binds its log context, `suspend` undoes both, `done` ends it. The context
manager form calls the same three. What a run needs from the runtime (tracer, registry, error
capture, trace level) is in `JobState`, set by `kansoku.jobs.configure` when the runtime is built.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, CollectorRegistry

from kansoku._safety import suppress_internal_errors
from kansoku.context import context
from kansoku.jobs._metrics import JobMetrics
from kansoku.logs import get_logger
from kansoku.redact import Redactor
from kansoku.tracing import LightSpan, LightTracer, TraceLevel
from kansoku.tracing._spans import record_error, restore, use_span
from kansoku.tracing._traced import argument_attributes

__all__ = ["CURRENT", "Capture", "JobRun", "JobState", "new_run_id"]

_log = get_logger("kansoku.jobs")
CURRENT: ContextVar[JobRun | None] = ContextVar("kansoku_job_run", default=None)


Capture: TypeAlias = Callable[..., str]
"""How a failed run becomes an error event: the runtime's `capture_exception(exc, **context)`."""


def new_run_id() -> str:
    """A fresh run id (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass
class JobState:
    """What runs use: set once by the runtime, read by every run."""

    tracer: LightTracer | None = None
    capture: Capture | None = None
    level: TraceLevel = TraceLevel.PERFORMANCE
    redactor: Redactor = field(default_factory=Redactor)
    registry: CollectorRegistry = REGISTRY
    clock: Callable[[], float] = time.time
    _metrics: JobMetrics | None = None

    @property
    def metrics(self) -> JobMetrics:
        """The job metrics in the current registry (made on first use)."""
        made = self._metrics
        if made is None or made.registry is not self.registry:
            made = self._metrics = JobMetrics(self.registry)
        return made


class JobRun:
    """One run of the job `name`; `run_id` and the fields are in every log line and error event inside.

    `kind`, `parent` (an OpenTelemetry context: a trace continued from a message's headers),
    `attributes` (span attributes, already clean) and `queue_wait` (seconds) are for integrations
    such as Celery's; a plain `kansoku.job()` uses the defaults. `status` may be set before the run
    ends (`retry`); otherwise it is `ok`, `error` for an exception, `cancelled` for any other
    BaseException (a cancelled task, an interrupted loop). `arguments` are the call's arguments,
    captured (redacted) on the error event and the span at argument-capturing trace levels only.
    """

    def __init__(
        self, state: JobState, name: str, *, run_id: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
        parent: Context | None = None, attributes: Mapping[str, Any] | None = None,
        queue_wait: float | None = None, arguments: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.state = state
        self.name = name
        self.run_id = run_id or new_run_id()
        self.status: str | None = None
        self.arguments = arguments
        self.fields = {"job": name, "job_run_id": self.run_id, **(fields or {})}
        self.span: LightSpan | None = None
        self.error_event_id: str | None = None
        self.token: object = None  # the context manager's `resume` token
        self._binding: list[AbstractContextManager[Any]] = []
        self.started_at = state.clock()
        self._start = time.perf_counter()
        with suppress_internal_errors("jobs.start"):
            self._begin(kind, parent, attributes, queue_wait)

    def _begin(self, kind: SpanKind, parent: Context | None, attributes: Mapping[str, Any] | None,
               queue_wait: float | None) -> None:
        tracer = self.state.tracer
        if tracer is not None and self.state.level >= TraceLevel.PERFORMANCE:
            self.span = tracer.start_span(self.name, kind, parent)
            recorded = self.span._attributes
            if recorded is not None:
                recorded.update({"kansoku.job.name": self.name, "kansoku.job.run_id": self.run_id})
                recorded.update(attributes or {})
                if self.arguments and self.capturing_arguments:
                    recorded.update(argument_attributes(self.state.redactor.redact(dict(self.arguments))))
        self.state.metrics.started(self.name, queue_wait)

    @property
    def capturing_arguments(self) -> bool:
        """Whether the trace level records arguments (DETAILED and VERBOSE)."""
        return self.state.level >= TraceLevel.DETAILED

    @property
    def trace_id(self) -> str | None:
        """The run's trace id in hex, or None when it has no span."""
        return self.span.trace_id if self.span is not None else None

    def resume(self) -> object:
        """Make the run and its span current and bind the log context (each step of the wrapped call)."""
        binding = context(**self.fields)
        binding.__enter__()
        self._binding.append(binding)
        current = CURRENT.set(self)
        if self.span is None:
            return current, None
        return current, use_span(self.span, trace.set_span_in_context(self.span))

    def suspend(self, token: object) -> None:
        """Undo `resume`."""
        current, span_token = cast(tuple[Token[JobRun | None], object], token)
        if span_token is not None:
            restore(span_token)
        CURRENT.reset(current)
        if self._binding:
            self._binding.pop().__exit__(None, None, None)

    def done(self, exc: BaseException | None) -> None:
        """End the run: metrics, the error event if it raised, the span (never raises)."""
        try:
            self._finish(exc)
        except Exception as error:  # kansoku's own failure: never instead of the job's result
            with suppress_internal_errors("jobs.finish"):
                raise error

    def _finish(self, exc: BaseException | None) -> None:
        status = self.status or ("ok" if exc is None else "error" if isinstance(exc, Exception) else "cancelled")
        self.status = status
        failed = isinstance(exc, Exception) and status == "error"
        self.state.metrics.finished(self.name, status, time.perf_counter() - self._start,
                                    type(exc).__name__ if failed else None)
        if failed:
            assert isinstance(exc, Exception)
            self._capture(exc)
            if self.span is not None:
                record_error(self.span, exc, self.state.redactor)
        if self.span is not None:
            self.span.set_attribute("kansoku.job.status", status)
            self.span.end()

    def _capture(self, exc: Exception) -> None:
        extra: dict[str, Any] = {}
        if self.arguments and self.capturing_arguments:
            extra["arguments"] = dict(self.arguments)  # redacted with the event
        capture = self.state.capture
        if capture is None:  # not instrumented: the log line is all there is
            _log.error("job failed", exc_info=exc, job=self.name, job_run_id=self.run_id)
            return
        # Grouped by code location within the job; the job's name is the culprit the list shows.
        self.error_event_id = capture(exc, mechanism="job", handled=False, culprit=self.name,
                                      fingerprint=["{{ default }}", f"job:{self.name}"],
                                      tags={"job": self.name}, **extra)


