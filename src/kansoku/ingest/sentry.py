"""Sentry's wire formats: envelopes, the legacy store body, and their items as kansoku records.

An envelope (https://develop.sentry.dev/sdk/data-model/envelopes/) is a JSON header line, then
items: a JSON item header line (`type`, optional `length`) and a payload (`length` bytes, else up
to the next newline). `event` items become error events, `transaction` items spans, `check_in`
items monitor check-ins (`ingest.checkins`); other item types (sessions, client reports,
attachments, profiles...) are counted and ignored. Anything
malformed is an `IngestError` 400 naming what is wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kansoku.ingest.body import IngestError
from kansoku.ingest.checkins import CheckIn, checkin_from_sentry
from kansoku.ingest.sentry_event import event_from_sentry, spans_from_transaction
from kansoku.typing import ErrorEvent

__all__ = ["Parsed", "parse_envelope", "parse_store_body"]

MAX_ITEMS: Final = 100


@dataclass
class Parsed:
    """What one request carried: error events (with custom fingerprints), span rows, check-ins, ignored items."""

    events: list[tuple[ErrorEvent, list[str] | None]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    checkins: list[CheckIn] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise IngestError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _line(body: bytes, at: int) -> tuple[bytes, int]:
    end = body.find(b"\n", at)
    return (body[at:], len(body)) if end < 0 else (body[at:end], end + 1)


def parse_envelope(body: bytes, project: str, now: float) -> Parsed:
    """The records of an envelope body for `project`; IngestError 400 when malformed."""
    header_line, at = _line(body, 0)
    _json_object(header_line, "the envelope header")
    parsed = Parsed()
    index = 0
    while at < len(body):
        line, at = _line(body, at)
        if not line.strip():
            continue
        index += 1
        if index > MAX_ITEMS:
            raise IngestError(400, f"more than {MAX_ITEMS} items in one envelope")
        header = _json_object(line, f"the header of item {index}")
        length = header.get("length")
        if length is None:
            payload, at = _line(body, at)
        elif isinstance(length, int) and not isinstance(length, bool) and 0 <= length <= len(body) - at:
            payload, at = body[at:at + length], at + length
            if body[at:at + 1] == b"\n":
                at += 1
        else:
            raise IngestError(400, f"item {index}: length {length!r} is not within the envelope")
        _add_item(parsed, str(header.get("type", "")), payload, index, project, now)
    return parsed


def _add_item(parsed: Parsed, kind: str, payload: bytes, index: int, project: str, now: float) -> None:
    if kind == "event":
        parsed.events.append(event_from_sentry(_json_object(payload, f"item {index} (event)"), project, now))
    elif kind == "transaction":
        parsed.spans.extend(spans_from_transaction(_json_object(payload, f"item {index} (transaction)"),
                                                   project, now))
    elif kind == "check_in":
        parsed.checkins.append(checkin_from_sentry(_json_object(payload, f"item {index} (check_in)")))
    else:
        parsed.ignored[kind[:32] or "unknown"] += 1


def parse_store_body(body: bytes, project: str, now: float) -> Parsed:
    """The legacy store endpoint's body: one event (or transaction) as a JSON object."""
    payload = _json_object(body, "the event")
    parsed = Parsed()
    if payload.get("type") == "transaction":
        parsed.spans.extend(spans_from_transaction(payload, project, now))
    else:
        parsed.events.append(event_from_sentry(payload, project, now))
    return parsed
