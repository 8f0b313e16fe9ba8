"""Every kansoku log line as an OTLP log record, when `OTEL_LOGS_EXPORTER=otlp` (or a logs endpoint).

The record is the redacted line: `body` is the event text, the other fields are attributes
(numbers and strings as they are, anything else as JSON), `severity_number` and `severity_text`
follow the OpenTelemetry log data model, the trace and span ids are the record's own, and the
resource is the one spans carry (service name, version, environment, host). On the log path this
is one record handed to the SDK's BatchLogRecordProcessor (a queue); encoding and sending happen
in its thread. A collector that cannot be reached is one line down and one back
(`kansoku._outage.Link`, target `otlp-logs`), and the exporter's own lines are dropped: they
would come back here as log lines, and be exported again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from kansoku._outage import Link
from kansoku.settings import Settings
from kansoku.typing import EventDict

__all__ = ["OtlpLogs", "logs_target", "severity_of"]

_SEVERITY: Final = {
    "trace": SeverityNumber.TRACE, "debug": SeverityNumber.DEBUG, "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN, "error": SeverityNumber.ERROR, "critical": SeverityNumber.FATAL,
}
_NOT_ATTRIBUTES: Final = frozenset({"event", "level", "timestamp", "trace_id", "span_id"})
_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.http._log_exporter"


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

    def __init__(self, url: str | None, resource: Resource, *, exporter: LogRecordExporter | None = None) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            exporter = OTLPLogExporter(endpoint=url)
        _quiet_exporter()
        self.link = Link("otlp-logs", _LinkLog())
        self.provider = LoggerProvider(resource=resource)
        self.provider.add_log_record_processor(BatchLogRecordProcessor(_Linked(exporter, self.link)))
        self._logger = self.provider.get_logger("kansoku")

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> EventDict:
        """Emit the line as a record; the line itself goes on unchanged."""
        event = event_dict.get("event")
        self._logger.emit(LogRecord(
            timestamp=time.time_ns(), severity_number=severity_of(method), severity_text=method.upper(),
            body=event if isinstance(event, str) else _attribute(event),
            trace_id=_id(event_dict.get("trace_id"), 32), span_id=_id(event_dict.get("span_id"), 16),
            attributes={key: _attribute(value) for key, value in event_dict.items()
                        if key not in _NOT_ATTRIBUTES and value is not None}))
        return event_dict

    def shutdown(self) -> None:
        """Send what is queued, then stop the exporter thread."""
        self.provider.shutdown()

    def flush(self, timeout_millis: int = 10_000) -> bool:
        """Send what is queued."""
        return bool(self.provider.force_flush(timeout_millis))


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


class _LastLine(logging.Filter):
    """Drops the exporter's own lines (they would be exported again), keeping the last text."""

    last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        self.last = record.getMessage()[:300]
        return False

    def take(self) -> str:
        last, self.last = self.last, ""
        return last


_LINES = _LastLine()


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
