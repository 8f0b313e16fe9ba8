"""A Sentry event (or transaction) payload as kansoku's records.

Events: the exception chain (Sentry lists it cause first, the raised one last, frames outermost
first, as kansoku does), message, level, release, environment, user, tags, contexts, breadcrumbs,
request, the SDK's `fingerprint`, the trace context. Sizes are bounded here (frames, chain,
breadcrumbs, strings); redaction, grouping and classification happen after, as for native events.
Transactions: the transaction and its child spans as span rows of the span store.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from kansoku.ingest.body import IngestError
from kansoku.typing import ErrorEvent, ExceptionInfo, FrameInfo, RequestInfo

__all__ = ["event_from_sentry", "spans_from_transaction", "timestamp_of"]

MAX_CHAIN: Final = 5
MAX_FRAMES: Final = 50
MAX_CRUMBS: Final = 100
MAX_TEXT: Final = 8192
MAX_SPANS: Final = 1000
_HEX32: Final = re.compile(r"[0-9a-f]{32}")
_HEX16: Final = re.compile(r"[0-9a-f]{16}")
_LEVELS: Final = frozenset({"fatal", "error", "warning", "info", "debug"})


def _text(value: Any, size: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text[:size]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _values(value: Any) -> list[Any]:
    """Sentry's `{"values": [...]}` interfaces, or a bare list."""
    if isinstance(value, dict):
        value = value.get("values")
    return value if isinstance(value, list) else []


def timestamp_of(value: Any, now: float) -> float:
    """Epoch seconds of a Sentry timestamp (number or RFC 3339); `now` if absent, bad or in the future."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return now
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        seconds = parsed.timestamp()
    else:
        return now
    return seconds if 0 < seconds <= now + 60 else now


def _frame(raw: Any) -> FrameInfo | None:
    if not isinstance(raw, dict):
        return None
    frame = FrameInfo(filename=_text(raw.get("filename") or raw.get("abs_path"), 512),
                      abs_path=_text(raw.get("abs_path") or raw.get("filename"), 1024),
                      module=_text(raw.get("module"), 256), function=_text(raw.get("function") or "?", 256),
                      in_app=raw.get("in_app") is True)
    lineno = raw.get("lineno")
    if isinstance(lineno, int) and not isinstance(lineno, bool):
        frame["lineno"] = lineno
    if isinstance(raw.get("context_line"), str):
        frame["context_line"] = _text(raw["context_line"], 400)
        for name in ("pre_context", "post_context"):
            lines = raw.get(name)
            if isinstance(lines, list):
                frame[name] = [_text(line, 400) for line in lines[:10]]
    if isinstance(raw.get("vars"), dict):
        frame["locals"] = dict(list(raw["vars"].items())[:30])
    return frame


def _exception(raw: Any) -> ExceptionInfo | None:
    if not isinstance(raw, dict) or not (raw.get("type") or raw.get("value")):
        return None
    frames = [f for f in map(_frame, _values(_dict(raw.get("stacktrace")).get("frames"))) if f is not None]
    info = ExceptionInfo(type=_text(raw.get("type") or "Error", 256), module=_text(raw.get("module"), 256),
                         message=_text(raw.get("value")), frames=frames[-MAX_FRAMES:], relation="")
    if len(frames) > MAX_FRAMES:
        info["frames_omitted"] = len(frames) - MAX_FRAMES
    return info


def _message(payload: Mapping[str, Any]) -> str:
    for source in (payload.get("logentry"), payload.get("message")):
        if isinstance(source, str):
            return _text(source)
        if isinstance(source, dict):
            return _text(source.get("formatted") or source.get("message"))
    return ""


def _request(raw: Any) -> RequestInfo | None:
    if not isinstance(raw, dict):
        return None
    request = RequestInfo(method=_text(raw.get("method"), 16), url=_text(raw.get("url"), 2048))
    headers = raw.get("headers")
    if isinstance(headers, list):  # Sentry allows [[name, value], ...]
        headers = {str(p[0]): p[1] for p in headers if isinstance(p, list) and len(p) == 2}
    if isinstance(headers, dict):
        request["headers"] = {str(k)[:128]: _text(v, 1024) for k, v in list(headers.items())[:50]}
        if "User-Agent" in request["headers"]:
            request["user_agent"] = request["headers"]["User-Agent"]
    query = raw.get("query_string")
    if isinstance(query, str) and query:
        request["query"] = {"raw": _text(query, 2048)}
    elif isinstance(query, dict | list):
        request["query"] = {"raw": query}
    if raw.get("data") is not None:
        request["body"] = raw["data"]
    return request


def _tags(raw: Any) -> dict[str, str]:
    if isinstance(raw, list):  # [[key, value], ...]
        raw = {str(p[0]): p[1] for p in raw if isinstance(p, list) and len(p) == 2}
    if not isinstance(raw, dict):
        return {}
    return {str(k)[:200]: _text(v, 200) for k, v in list(raw.items())[:100]}


def _event_id(value: Any) -> str:
    text = _text(value, 64).replace("-", "").lower()
    return text if _HEX32.fullmatch(text) else uuid.uuid4().hex


def event_from_sentry(payload: Mapping[str, Any], project: str, now: float) -> tuple[ErrorEvent, list[str] | None]:
    """The kansoku event of a Sentry event (no group key yet) and the SDK's custom fingerprint."""
    chain = [e for e in map(_exception, _values(payload.get("exception"))) if e is not None][-MAX_CHAIN:]
    for earlier in chain[:-1]:
        earlier["relation"] = "context"
    message = chain[-1]["message"] if chain else _message(payload)
    raw_chain = _values(payload.get("exception"))
    mechanism = _dict(_dict(raw_chain[-1]).get("mechanism")) if raw_chain else {}
    tags = _tags(payload.get("tags"))
    level = _text(payload.get("level"), 16).lower() or "error"
    event = ErrorEvent(
        event_id=_event_id(payload.get("event_id")), timestamp=timestamp_of(payload.get("timestamp"), now),
        exception_type=chain[-1]["type"] if chain else "Message", message=message, exceptions=chain,
        level=level if level in _LEVELS else "error",
        service=_text(tags.get("service") or tags.get("service.name") or project, 128),
        environment=_text(payload.get("environment") or "production", 64),
        host=_text(payload.get("server_name"), 256), handled=mechanism.get("handled") is not False,
        mechanism=f"sentry:{_text(mechanism.get('type') or 'generic', 64)}",
    )
    event["project"] = project
    if payload.get("release"):
        event["release"] = _text(payload["release"], 128)
    if tags:
        event["tags"] = tags
    user = payload.get("user")
    if isinstance(user, dict) and user:
        event["user"] = {str(k): v for k, v in list(user.items())[:20]}
    request = _request(payload.get("request"))
    if request is not None:
        event["request"] = request
    crumbs = [c for c in _values(payload.get("breadcrumbs")) if isinstance(c, dict)][-MAX_CRUMBS:]
    if crumbs:
        event["breadcrumbs"] = crumbs
    contexts = _dict(payload.get("contexts"))
    trace = _dict(contexts.get("trace"))
    if _HEX32.fullmatch(_text(trace.get("trace_id"), 64)):
        event["trace_id"] = trace["trace_id"]
        if _HEX16.fullmatch(_text(trace.get("span_id"), 32)):
            event["span_id"] = trace["span_id"]
    extra = {k: v for k, v in (("contexts", contexts), ("extra", payload.get("extra")), ("sdk", payload.get("sdk")),
                               ("transaction", payload.get("transaction")), ("logger", payload.get("logger")))
             if v}
    if extra:
        event["extra"] = extra
    fingerprint = payload.get("fingerprint")
    custom = [_text(v, 256) for v in fingerprint[:20]] if isinstance(fingerprint, list) and fingerprint else None
    return event, custom


_STATUS_OK: Final = frozenset({"ok", ""})


def _span_row(raw: Mapping[str, Any], trace_id: str, service: str, project: str, now: float,
              name: str, kind: str) -> dict[str, Any] | None:
    span_id = _text(raw.get("span_id"), 32)
    if not _HEX16.fullmatch(span_id):
        return None
    start = timestamp_of(raw.get("start_timestamp"), now)
    end = max(start, timestamp_of(raw.get("timestamp"), now))
    parent = _text(raw.get("parent_span_id"), 32)
    status = _text(raw.get("status"), 32)
    attributes = dict(_dict(raw.get("data"))) | {f"sentry.tag.{k}": v for k, v in _tags(raw.get("tags")).items()}
    if raw.get("op"):
        attributes["sentry.op"] = _text(raw["op"], 128)
    return {
        "span_id": span_id, "trace_id": trace_id, "parent_id": parent if _HEX16.fullmatch(parent) else None,
        "name": _text(name, 256), "kind": kind, "service": service, "start_time": start, "end_time": end,
        "duration_ms": (end - start) * 1000.0, "status": "OK" if status == "ok" else "UNSET" if not status else "ERROR",
        "status_message": None if status in _STATUS_OK else status, "attributes": attributes, "events": [],
        "is_root": False, "project": project, "links": None, "resource": None,
    }


def spans_from_transaction(payload: Mapping[str, Any], project: str, now: float) -> list[dict[str, Any]]:
    """Span rows of a Sentry transaction: the transaction itself (a root) and its child spans."""
    trace = _dict(_dict(payload.get("contexts")).get("trace"))
    trace_id = _text(trace.get("trace_id"), 64)
    if not _HEX32.fullmatch(trace_id):
        raise IngestError(400, "transaction without a valid contexts.trace.trace_id (32 hex digits)")
    service = _text(_tags(payload.get("tags")).get("service") or project, 128)
    op = _text(trace.get("op"), 64)
    root_raw = {**trace, "start_timestamp": payload.get("start_timestamp"), "timestamp": payload.get("timestamp"),
                "tags": payload.get("tags")}
    name = _text(payload.get("transaction") or op or "transaction")
    root = _span_row(root_raw, trace_id, service, project, now, name,
                     "SERVER" if op.startswith("http.server") else "INTERNAL")
    if root is None:
        raise IngestError(400, "transaction without a valid contexts.trace.span_id (16 hex digits)")
    root["is_root"] = True
    rows = [root]
    for raw in _values(payload.get("spans"))[:MAX_SPANS]:
        if isinstance(raw, dict):
            op = _text(raw.get("op"), 64)
            kind = "CLIENT" if op.startswith(("http.client", "db")) else "INTERNAL"
            row = _span_row(raw, trace_id, service, project, now, _text(raw.get("description") or op or "span"), kind)
            if row is not None:
                rows.append(row)
    return rows
