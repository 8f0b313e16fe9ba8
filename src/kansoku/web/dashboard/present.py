"""Pure functions that shape stored data for the templates: frames, chains, waterfalls, channels.

Nothing here touches the store or the request, so each is tested with plain dicts. Every string
still goes through Jinja's autoescape when rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kansoku.redact import Redactor

__all__ = [
    "RELATIONS",
    "WaterfallRow",
    "chain",
    "format_value",
    "frame_lines",
    "human_bytes",
    "mask_channel",
    "mask_settings",
    "span_status",
    "span_title",
    "waterfall",
]

RELATIONS = {
    "cause": "Direct cause of the exception above",
    "context": "Being handled when the exception above occurred",
}
_SECRET_WORDS = ("secret", "token", "password", "key", "auth", "dsn", "sid")
_redactor = Redactor(mask="***")


def format_value(value: Any, limit: int = 2000) -> str:
    """A stored value as one readable string: strings as they are, the rest as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def frame_lines(frame: Mapping[str, Any]) -> list[tuple[int | None, str, bool]]:
    """Source context of a frame as (line number, text, is the failing line)."""
    lineno = frame.get("lineno")
    before = [str(line) for line in frame.get("pre_context") or []]
    after = [str(line) for line in frame.get("post_context") or []]
    current = frame.get("context_line")
    if current is None:
        return []
    first = lineno - len(before) if isinstance(lineno, int) else None

    def number(offset: int) -> int | None:
        return None if first is None else first + offset

    lines = [(number(i), text, False) for i, text in enumerate(before)]
    lines.append((lineno if isinstance(lineno, int) else None, str(current), True))
    lines += [(number(len(before) + 1 + i), text, False) for i, text in enumerate(after)]
    return lines


def chain(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The event's exceptions, the raised one first; `link` says how each one led to the one above.

    `ErrorEvent.exceptions` lists the chain root cause first (the raised exception last), and the
    `relation` of an entry says how it led to the next one (``cause`` for ``raise ... from``).
    """
    found = [dict(e) for e in data.get("exceptions") or [] if isinstance(e, Mapping)]
    if not found:
        found = [{"type": data.get("exception_type", "Error"), "message": data.get("message", ""),
                  "frames": [], "relation": ""}]
    for exc in found:
        exc["link"] = RELATIONS.get(str(exc.get("relation", "")))
        exc["frames"] = [dict(f) for f in exc.get("frames") or [] if isinstance(f, Mapping)]
    return found[::-1]  # the raised exception first: it is what the reader came for


def span_title(span: Mapping[str, Any]) -> str:
    """A span's name as a list shows it; a server span that matched no route is named by its
    method alone (OpenTelemetry's rule for a low-cardinality name), so its path is added here:
    'GET (no route) /missing'."""
    name = str(span.get("name", ""))
    attributes = span.get("attributes") or {}
    route = span.get("route") or attributes.get("http.route")
    path = span.get("path") or attributes.get("url.path")
    if span.get("kind") == "SERVER" and not route and path and " " not in name:
        return f"{name} (no route) {path}"
    return name


def span_status(span: Mapping[str, Any]) -> str:
    """'error' for a span that failed, else 'ok': OpenTelemetry's UNSET means no error was recorded."""
    return "error" if str(span.get("status", "")).upper() == "ERROR" else "ok"


@dataclass(frozen=True)
class WaterfallRow:
    """One span of a trace as drawn: depth in the tree and its bar in 0..1000 units."""

    span: Mapping[str, Any]
    depth: int
    offset: float
    width: float
    offset_ms: float


def waterfall(spans: Sequence[Mapping[str, Any]]) -> list[WaterfallRow]:
    """Spans in tree order (children under their parent, by start time) with bar geometry."""
    if not spans:
        return []
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    start = min(float(s["start_time"]) for s in spans)
    end = max(float(s["end_time"]) for s in spans)
    total = max(end - start, 1e-9)
    rows: list[WaterfallRow] = []
    stack = [(s, 0) for s in sorted(children.get(None, []), key=_start, reverse=True)]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span["span_id"] in seen:  # a cycle in bad data must not loop forever
            continue
        seen.add(span["span_id"])
        offset = (float(span["start_time"]) - start) / total * 1000
        width = max((float(span["end_time"]) - float(span["start_time"])) / total * 1000, 2.0)
        rows.append(WaterfallRow(span, depth, offset, min(width, 1000 - offset + 2),
                                 (float(span["start_time"]) - start) * 1000))
        kids = sorted(children.get(span["span_id"], []), key=_start, reverse=True)
        stack.extend((kid, depth + 1) for kid in kids)
    return rows


def _start(span: Mapping[str, Any]) -> float:
    return float(span["start_time"])


def mask_channel(channel: Mapping[str, Any]) -> dict[str, str]:
    """A channel's settings for display: secrets masked, URLs cut to scheme and host."""
    shown: dict[str, str] = {}
    for key, value in channel.items():
        if value in (None, "", [], {}, ()):
            continue
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            shown[key] = "***"
        elif "url" in lowered:
            shown[key] = ", ".join(_mask_url(str(v)) for v in (value if isinstance(value, list | tuple)
                                                               else [value]))
        else:
            shown[key] = format_value(_redactor.redact(value), 300)
    return shown


def mask_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """`Settings.masked()` made safe to show: channel URLs cut to their host, and any string with
    a credential in it (``user:password@`` in a database URL, ``sig=`` in a query) scrubbed."""
    shown = {key: _redactor.redact(value) for key, value in values.items()}
    alerts = shown.get("alerts")
    if isinstance(alerts, Mapping) and isinstance(alerts.get("channels"), list):
        channels = [mask_channel(c) if isinstance(c, Mapping) else c for c in alerts["channels"]]
        shown["alerts"] = {**alerts, "channels": channels}
    return shown


def _mask_url(url: str) -> str:
    """Webhook URLs carry their secret in the path or query: show where they go, not the secret."""
    if url.startswith("*"):
        return url
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "***"
    rest = "/***" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{rest}"


def human_bytes(value: float) -> str:
    """Bytes as '512 B', '3.4 KiB', '12.0 MiB', '1.2 GiB' (signed for differences)."""
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
