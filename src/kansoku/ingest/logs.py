"""OTLP/HTTP log payloads (ExportLogsServiceRequest, protobuf or JSON) as log store records.

Each OTLP LogRecord becomes one `store.logs.LogRecord`: its time (else its observed time, else the
time it arrived), its severity as kansoku's level (the OpenTelemetry log data model's ranges:
1-4 trace, 5-8 debug, 9-12 info, 13-16 warning, 17-20 error, 21-24 critical; an unset number is
read from the severity text), its body as the message (a structured body as JSON text), its
attributes as fields, its trace and span ids, the instrumentation scope as the logger, the
resource's service.name, service.version and deployment.environment, and the project. A record
whose ids are not 16 and 8 bytes (or empty) is rejected, counted for the partial-success answer.
The sink's writer thread redacts message, logger and fields (the one `Redactor`) and writes with
`store.logs.write_logs`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from sqlalchemy import Engine

from kansoku.ingest.otlp import attributes_of, decode, resource_of, value_of
from kansoku.ingest.sink import Sink
from kansoku.redact import Redactor
from kansoku.store.logs import level_number, write_logs

__all__ = ["DecodedLogs", "decode_logs", "level_of", "log_sink", "logs_of", "redact_record"]

_LEVELS: Final = (5, 10, 20, 30, 40, 50)  # kansoku's trace .. critical, one per OTel range of four
_BAD_IDS: Final = "log records' trace_id and span_id must be 16 and 8 bytes (or empty)"


def decode_logs(body: bytes, kind: str) -> ExportLogsServiceRequest:
    """The log export request in `body`; IngestError 400 with the decoder's reason when malformed."""
    return decode(body, kind, ExportLogsServiceRequest())


def level_of(severity_number: int, severity_text: str) -> int:
    """kansoku's level of an OTLP severity: its number's range, else its text, else info."""
    if 1 <= severity_number <= 24:
        return _LEVELS[(severity_number - 1) // 4]
    return level_number(severity_text or None)


@dataclass
class DecodedLogs:
    """The log store records of a request, and the records rejected (and why)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""


def _id(raw: bytes, size: int) -> str | bool | None:
    """The hex id, None when empty (or all zero), False when malformed."""
    if not raw:
        return None
    if len(raw) != size:
        return False
    return raw.hex() if any(raw) else None


def _message(record: LogRecord) -> str:
    if record.body.WhichOneof("value") == "string_value":
        return record.body.string_value
    body = value_of(record.body)
    if body is None:
        return record.event_name
    return orjson.dumps(body, default=str).decode()


def _record(record: LogRecord, base: dict[str, Any], now: float) -> dict[str, Any] | None:
    trace_id, span_id = _id(record.trace_id, 16), _id(record.span_id, 8)
    if trace_id is False or span_id is False:
        return None
    stamp = record.time_unix_nano or record.observed_time_unix_nano
    attributes = attributes_of(record.attributes)
    if record.event_name:
        attributes.setdefault("event.name", record.event_name)
    return {**base, "timestamp": stamp / 1e9 if stamp else now,
            "level": level_of(record.severity_number, record.severity_text), "message": _message(record),
            "trace_id": trace_id, "span_id": span_id, "attributes": attributes}


def logs_of(request: ExportLogsServiceRequest, project: str, now: float | None = None) -> DecodedLogs:
    """The log store records of an export request for `project`."""
    decoded = DecodedLogs()
    arrived = time.time() if now is None else now
    for resource_logs in request.resource_logs:
        service, env, version = resource_of(attributes_of(resource_logs.resource.attributes))
        for scope_logs in resource_logs.scope_logs:
            base = {"service": service, "environment": env, "version": version, "project": project,
                    "logger": scope_logs.scope.name}
            for record in scope_logs.log_records:
                row = _record(record, base, arrived)
                if row is None:
                    decoded.rejected += 1
                    decoded.reason = _BAD_IDS
                    continue
                decoded.records.append(row)
    return decoded


def redact_record(record: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The record with every text a sender chose (message, logger, fields) redacted."""
    clean = dict(record)
    clean["message"] = redactor.redact_text(record["message"])
    clean["logger"] = redactor.redact_text(record["logger"])
    clean["attributes"] = redactor.redact(record["attributes"])
    return clean


def log_sink(engine: Engine, redactor: Redactor, *, maxsize: int = 10_000) -> Sink:
    """The sink of ingested log records into the log store."""

    def prepare(record: dict[str, Any]) -> dict[str, Any]:
        return redact_record(record, redactor)

    def write(records: list[dict[str, Any]]) -> None:
        write_logs(engine, records)

    return Sink("ingest-logs", prepare, write, maxsize=maxsize, max_batch=1000)
