"""OTLP/HTTP trace payloads (protobuf or JSON) as span rows and error events.

Decoding is opentelemetry-proto's: protobuf as is; JSON through protobuf's json_format after the
one difference the OTLP specification makes, ids as hex rather than base64. Each span becomes a
row of the span store (kind, status, attributes, events, links, the resource's attributes, the
project); an `exception` span event (the semantic conventions' exception.type / .message /
.stacktrace) also becomes an error event of the span's service. Spans with invalid ids are
rejected one by one and counted for the partial-success answer.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kansoku.ingest.body import IngestError
from kansoku.typing import ErrorEvent, ExceptionInfo, FrameInfo

__all__ = ["Decoded", "attributes_of", "decode", "decode_traces", "encode_response", "resource_of", "traces_of",
           "value_of"]

_M = TypeVar("_M", bound=Message)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_KINDS: Final = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS: Final = {0: "UNSET", 1: "OK", 2: "ERROR"}
_ID_FIELDS: Final = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_REMOTE_KNOWN: Final = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE: Final = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_PY_FRAME: Final = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_JS_FRAME: Final = re.compile(r"^\s*at (?:(\S+) \()?(.+?):(\d+):\d+\)?\s*$", re.M)


def media_type(content_type: str | None) -> str:
    """`application/x-protobuf` or `application/json`; IngestError 415 for anything else."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if value == JSON:
        return JSON
    raise IngestError(415, f"Content-Type {value[:60]!r} not supported: send application/x-protobuf or "
                      "application/json")


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_b64(v) if k in _ID_FIELDS and isinstance(v, str) else _hex_ids_to_base64(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids_to_base64(v) for v in value]
    return value


def _b64(hex_id: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()
    except ValueError:
        raise IngestError(400, f"id {hex_id[:40]!r} is not hex (OTLP JSON ids are hex strings)") from None


def decode(body: bytes, kind: str, message: _M) -> _M:
    """`message` (an empty export request) filled from `body`; IngestError 400 with the decoder's
    reason when malformed."""
    name = type(message).__name__
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise IngestError(400, f"not a valid OTLP {name} (protobuf): {exc}") from None
        return message
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise IngestError(400, f"an OTLP JSON body must be an object (an {name})")
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise IngestError(400, f"not a valid OTLP {name} (JSON): {exc}") from None
    return message


def decode_traces(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """The trace export request in `body` (see `decode`)."""
    return decode(body, kind, ExportTraceServiceRequest())


def encode_response(kind: str, rejected: int = 0, message: str = "", *, signal: str = "traces") -> bytes:
    """The export response of `signal` (traces or logs), with a partial success when records were
    rejected, in the request's encoding."""
    response: ExportTraceServiceResponse | ExportLogsServiceResponse
    if signal == "logs":
        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
    else:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = message
    if kind == PROTOBUF:
        return bytes(response.SerializeToString())
    return str(json_format.MessageToJson(response, indent=None)).encode()


def value_of(value: AnyValue) -> Any:
    """An OTLP AnyValue as plain JSON data."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def attributes_of(items: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP attributes as a dict."""
    return {item.key[:256]: value_of(item.value) for item in items}


def resource_of(resource: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """The service name, environment and version a resource's attributes name (semantic conventions)."""
    service = str(resource.get("service.name") or "unknown_service")[:128]
    env = str(resource.get("deployment.environment.name") or resource.get("deployment.environment")
              or "production")[:64]
    version = resource.get("service.version")
    return service, env, None if version is None else str(version)[:128]


@dataclass
class Decoded:
    """Span rows, error events from exception span events, and the spans rejected (and why)."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[ErrorEvent, list[str] | None]] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""


def _frames(stacktrace: str) -> list[FrameInfo]:
    """Frames parsed from a Python or JavaScript stack trace text (outermost first)."""
    frames = [FrameInfo(filename=f, abs_path=f, function=fn, lineno=int(n), module="", in_app=_in_app(f))
              for f, n, fn in _PY_FRAME.findall(stacktrace)]
    if frames:
        return frames[-50:]
    js = [FrameInfo(filename=f, abs_path=f, function=fn or "?", lineno=int(n), module="", in_app=_in_app(f))
          for fn, f, n in _JS_FRAME.findall(stacktrace)]
    return list(reversed(js))[-50:]  # JavaScript lists the innermost frame first


def _in_app(path: str) -> bool:
    return not any(part in path for part in ("site-packages", "dist-packages", "node_modules", "node:", "<frozen"))


def _error_event(span: Span, row: Mapping[str, Any], event: Any, project: str, env: str) -> ErrorEvent:
    attrs = attributes_of(event.attributes)
    type_name = str(attrs.get("exception.type") or "Error")[:256]
    message = str(attrs.get("exception.message") or "")[:8192]
    frames = _frames(str(attrs.get("exception.stacktrace") or ""))
    exception = ExceptionInfo(type=type_name, module="", message=message, frames=frames, relation="")
    error = ErrorEvent(
        event_id=f"{row['span_id']}{event.time_unix_nano & 0xFFFFFFFFFFFFFFFF:016x}", exception_type=type_name,
        timestamp=(event.time_unix_nano / 1e9) or row["end_time"], message=message, exceptions=[exception],
        level="error", service=row["service"], environment=env, handled=attrs.get("exception.escaped") is not True,
        mechanism="otlp:span-event", trace_id=row["trace_id"], span_id=row["span_id"],
    )
    error["project"] = project
    error["extra"] = {"span": row["name"], "span_attributes": row["attributes"]}
    return error


def _row(span: Span, service: str, project: str, resource: dict[str, Any]) -> dict[str, Any] | None:
    if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id) or not any(span.span_id):
        return None
    parent = span.parent_span_id.hex() if len(span.parent_span_id) == 8 else None
    start, end = span.start_time_unix_nano, max(span.end_time_unix_nano, span.start_time_unix_nano)
    remote_parent = span.flags & (_REMOTE_KNOWN | _REMOTE) == _REMOTE_KNOWN | _REMOTE
    return {
        "span_id": span.span_id.hex(), "trace_id": span.trace_id.hex(), "parent_id": parent,
        "name": span.name[:256] or "span", "kind": _KINDS.get(span.kind, "INTERNAL"), "service": service,
        "start_time": start / 1e9, "end_time": end / 1e9, "duration_ms": (end - start) / 1e6,
        "status": _STATUS.get(span.status.code, "UNSET"), "status_message": span.status.message[:2000] or None,
        "attributes": attributes_of(span.attributes),
        "events": [{"name": e.name[:256], "timestamp": e.time_unix_nano / 1e9,
                    "attributes": attributes_of(e.attributes)} for e in span.events[:128]],
        "is_root": parent is None or remote_parent, "project": project,
        "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                   "attributes": attributes_of(link.attributes)} for link in span.links[:128]] or None,
        "resource": resource,
    }


def traces_of(request: ExportTraceServiceRequest, project: str) -> Decoded:
    """The rows and error events of an export request for `project`."""
    decoded = Decoded()
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        service, env, _ = resource_of(resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                row = _row(span, service, project, resource)
                if row is None:
                    decoded.rejected += 1
                    decoded.reason = "spans need a 16-byte trace_id and an 8-byte span_id, not all zero"
                    continue
                decoded.spans.append(row)
                decoded.events.extend((_error_event(span, row, e, project, env), None)
                                      for e in span.events if e.name == "exception")
    return decoded
