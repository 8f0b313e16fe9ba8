"""Every kansoku log line as an OTLP log record, when `OTEL_LOGS_EXPORTER=otlp` (or a logs endpoint).

The record is the redacted line: `body` is the event text, the other fields are attributes
(numbers and strings as they are, anything else as JSON), `severity_number` and `severity_text`
follow the OpenTelemetry log data model, the trace and span ids are the record's own, and the
resource is the one spans carry (service name, version, environment, host). On the log path this
is a copy of the line put into a bounded kansoku queue (`otlp-logs`; full: dropped from the
export and counted, never waited for), about 3.6 us more per line; its thread makes the SDK's
records, about 22 us of CPU a line, and the SDK's batch processor sends them
(bench/logging/bench_otlp_logs.py). A collector that cannot be reached is one line down and one
back (`kansoku._outage.Link`, target `otlp-logs`), and the exporter's own lines are dropped: they
would come back here as log lines, and be exported again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from kansoku._outage import LastLine, Link
from kansoku._worker import BackgroundWorker
from kansoku.settings import Settings
from kansoku.typing import EventDict

__all__ = ["OtlpLogs", "logs_target", "record_of", "severity_of"]

_SEVERITY: Final = {
    "trace": SeverityNumber.TRACE, "debug": SeverityNumber.DEBUG, "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN, "error": SeverityNumber.ERROR, "critical": SeverityNumber.FATAL,
}
_NOT_ATTRIBUTES: Final = frozenset({"event", "level", "timestamp", "trace_id", "span_id"})
_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.http._log_exporter"
# Not an empty Context: the SDK takes an empty (falsy) one for "none given" and uses the current one.
_NO_CONTEXT: Final = set_span_in_context(INVALID_SPAN, Context())


def logs_target(settings: Settings) -> tuple[bool, str | None]:
    """Whether log records are exported, and where (None: the SDK's default, localhost:4318)."""
    if settings.sdk_disabled or settings.logs_exporter == "none":
        return False, None
    if settings.otlp_logs_endpoint:
        return True, settings.otlp_logs_endpoint
    if settings.logs_exporter != "otlp":
        return False, None
    if settings.otlp_endpoint:
        base = settings.otlp_endpoint.rstrip("/")
        return True, base if base.endswith("/v1/logs") else base + "/v1/logs"
    return True, None


def severity_of(method: str) -> SeverityNumber:
    """The OpenTelemetry severity of a kansoku level name."""
    return _SEVERITY.get(method, SeverityNumber.INFO)


def _attribute(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    return orjson.dumps(value, default=str).decode()


def _id(value: Any, size: int) -> int | None:
    if isinstance(value, str) and len(value) == size:
        try:
            return int(value, 16) or None
        except ValueError:
            return None
    return None


class OtlpLogs:
    """A log processor (before the renderer) that hands each line to an OTLP LoggerProvider."""

    def __init__(self, url: str | None, resource: Resource, *, exporter: LogRecordExporter | None = None,
                 maxsize: int = 10_000) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            exporter = OTLPLogExporter(endpoint=url)
        _quiet_exporter()
        self.link = Link("otlp-logs", _LinkLog())
        self.provider = LoggerProvider(resource=resource)
        self.provider.add_log_record_processor(BatchLogRecordProcessor(_Linked(exporter, self.link)))
        self._logger = self.provider.get_logger("kansoku")
        self.queue = BackgroundWorker("otlp-logs", maxsize=maxsize, batch=self._emit)

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> EventDict:
        """Queue the line for the export (a copy: the renderer may change the dict); it goes on unchanged."""
        self.queue.submit((time.time_ns(), method, dict(event_dict)))
        return event_dict

    def _emit(self, lines: list[tuple[int, str, EventDict]]) -> None:
        for timestamp, method, event_dict in lines:
            self._logger.emit(record_of(timestamp, method, event_dict))

    def shutdown(self) -> None:
        """Send what is queued, then stop the exporter thread."""
        self.flush()
        self.queue.close(5.0)
        self.provider.shutdown()

    def flush(self, timeout_millis: int = 10_000) -> bool:
        """Send what is queued."""
        queued = self.queue.flush(timeout_millis / 1000)
        return queued and bool(self.provider.force_flush(timeout_millis))


def record_of(timestamp: int, method: str, event_dict: EventDict) -> LogRecord:
    """One line as an OpenTelemetry log record."""
    event = event_dict.get("event")
    return LogRecord(
        context=_context_of(_id(event_dict.get("trace_id"), 32), _id(event_dict.get("span_id"), 16)),
        timestamp=timestamp, severity_number=severity_of(method), severity_text=method.upper(),
        body=event if isinstance(event, str) else _attribute(event),
        attributes={key: _attribute(value) for key, value in event_dict.items()
                    if key not in _NOT_ATTRIBUTES and value is not None})


def _context_of(trace_id: int | None, span_id: int | None) -> Context:
    """The line's own span as the record's context; an empty one without ids (the SDK would
    otherwise take the ids of whatever span is current in the export thread)."""
    if trace_id is None or span_id is None:
        return _NO_CONTEXT
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)))
    return set_span_in_context(span, Context())


class _Linked(LogRecordExporter):
    """The exporter, each batch's outcome told to the Link."""

    def __init__(self, exporter: LogRecordExporter, link: Link) -> None:
        self.exporter, self.link = exporter, link

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.exporter.export(batch)
        if result is LogRecordExportResult.SUCCESS:
            self.link.succeeded()
        else:
            self.link.failed(_LINES.take() or "the OTLP log exporter reported a failure", lost=len(batch))
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


_LINES = LastLine()


def _quiet_exporter() -> None:
    target = logging.getLogger(_EXPORTER_LOGGER)
    if _LINES not in target.filters:
        target.addFilter(_LINES)


class _LinkLog:
    """The Link's two lines, through kansoku's logger (imported late: this module is part of logs)."""

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        from kansoku.logs import get_logger

        return get_logger("kansoku.logs").warning(event, **kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        from kansoku.logs import get_logger

        return get_logger("kansoku.logs").info(event, **kw)
