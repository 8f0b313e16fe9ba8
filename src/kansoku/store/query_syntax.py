"""The one query syntax of the logs page, the trace search, the JSON API and the CLI.

    "payment failed"          words, in this order, in the message (a phrase)
    payment  pay*             a word; a word's beginning
    order_id=1234             a field equal to a value (case-insensitive; 1234, 1234.0 and "1234" alike)
    route:/orders/{id}        the same, written with a colon
    level>=warning            comparisons: = != > >= < <= (levels by name, durations with ms/s/m/h)
    duration>500ms  status>=500
    -service=shop  -timeout   negation of any term
    since:1h  until:2026-12-02T10:00   a time range (s, m, h, d, w ago, or an ISO time in UTC)
    msg="said \\"hi\\""       quotes around values with spaces or quotes (backslash escapes)

Terms are separated by spaces and all must hold. `parse(text)` returns a `Query`, or raises
`QuerySyntaxError` whose message points at the offending part. This module only parses: the
store compiles a `Query` to SQL for each backend (`store.search`).
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass
from typing import Final

__all__ = ["LEVELS", "MAX_QUERY", "FieldTerm", "Query", "QuerySyntaxError", "TextTerm", "parse", "parse_duration_ms",
           "parse_time"]

MAX_QUERY: Final = 2000
MAX_TERMS: Final = 32
LEVELS: Final = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50,
                 "fatal": 50}
OPERATORS: Final = ("!=", ">=", "<=", "=", ">", "<", ":")
_FIELD: Final = re.compile(r"[A-Za-z_@][A-Za-z0-9_.\-@/]*")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)?", re.IGNORECASE)
_AGO: Final = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d|w)", re.IGNORECASE)
_UNIT_MS: Final = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class QuerySyntaxError(ValueError):
    """A query that cannot be read: the reason, and where (`start`, `end` in the query)."""

    def __init__(self, reason: str, query: str, start: int, end: int | None = None) -> None:
        self.reason, self.query, self.start = reason, query, start
        self.end = max(end if end is not None else start + 1, start + 1)
        caret = " " * start + "^" * (min(self.end, len(query) + 1) - start)
        super().__init__(f"{reason} (at position {start + 1})\n  {query}\n  {caret}")


@dataclass(frozen=True)
class TextTerm:
    """Words of the message: a phrase when quoted; `prefix` for `pay*`."""

    text: str
    negated: bool = False
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class FieldTerm:
    """`name op value`; `op` is one of = != > >= < <= (`:` reads as `=`, `!=` as negated `=`)."""

    name: str
    op: str
    value: str
    negated: bool = False
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class Query:
    """A parsed query: every term must hold; `since`/`until` in epoch seconds."""

    text: str = ""
    terms: tuple[TextTerm | FieldTerm, ...] = ()
    since: float | None = None
    until: float | None = None

    def fields(self) -> list[FieldTerm]:
        """The field terms, in order."""
        return [t for t in self.terms if isinstance(t, FieldTerm)]


def parse_duration_ms(value: str) -> float | None:
    """`500ms`, `1.5s`, `2m`, `250us` or a bare number (ms) as milliseconds; None if not a duration."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_MS[(match.group(2) or "ms").lower()]


def parse_time(value: str, *, now: float | None = None) -> float | None:
    """`1h` (ago), `30m`, `7d`, an ISO date or time (UTC unless it says), or epoch seconds; None if neither."""
    now = time.time() if now is None else now
    value = value.strip()
    match = _AGO.fullmatch(value)
    if match is not None:
        return now - float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    try:
        return float(value) if value.replace(".", "", 1).isdigit() and len(value) >= 9 else _iso(value)
    except ValueError:
        return None


def _iso(value: str) -> float:
    stamp = datetime.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The string of the quote opening at `start` (backslash escapes) and the index after it."""
    out = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise QuerySyntaxError("unterminated quote: add the closing \"", text, start, len(text))


def _read_bare(text: str, start: int) -> int:
    i = start
    while i < len(text) and not text[i].isspace():
        if text[i] == '"' and i > start and text[i - 1] not in "=<>:!":
            break
        i += 1
    return i


def parse(text: str, *, now: float | None = None) -> Query:
    """Parse a query (see the module docstring); raise QuerySyntaxError pointing at the bad part."""
    if len(text) > MAX_QUERY:
        raise QuerySyntaxError(f"query too long ({len(text)} characters; at most {MAX_QUERY})", text[:80], 80)
    terms: list[TextTerm | FieldTerm] = []
    since = until = None
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-" and i + 1 < len(text) and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':
            phrase, i = _read_quoted(text, i)
            if not phrase.strip():
                raise QuerySyntaxError("empty phrase", text, start, i)
            terms.append(TextTerm(phrase, negated=negated, phrase=True))
        else:
            term, i = _field_or_word(text, i, negated, start)
            if isinstance(term, FieldTerm) and term.name in ("since", "until"):
                if negated or term.op not in ("=",):
                    raise QuerySyntaxError(f"write {term.name}:VALUE (like {term.name}:1h)", text, start, i)
                moment = parse_time(term.value, now=now)
                if moment is None:
                    raise QuerySyntaxError(f"{term.name}: {term.value!r} is not a time: write 15m, 1h, 7d or an "
                                           "ISO time like 2026-12-02T10:00", text, term.start, term.end)
                if term.name == "since":
                    since = moment
                else:
                    until = moment
                continue
            terms.append(term)
        if len(terms) > MAX_TERMS:
            raise QuerySyntaxError(f"too many terms (at most {MAX_TERMS})", text, start, i)
    return Query(text, tuple(terms), since, until)


def _field_or_word(text: str, i: int, negated: bool, start: int) -> tuple[TextTerm | FieldTerm, int]:
    name_match = _FIELD.match(text, i)
    if name_match is not None:
        end = name_match.end()
        op = next((o for o in OPERATORS if text.startswith(o, end)), None)
        if op is not None:
            name = name_match.group(0)
            value_start = end + len(op)
            if value_start < len(text) and text[value_start] == '"':
                value, after = _read_quoted(text, value_start)
            else:
                after = _read_bare(text, value_start)
                value = text[value_start:after]
            if value == "":
                raise QuerySyntaxError(f"{name}{op} needs a value (quote it if it has spaces)", text, start,
                                       value_start)
            if text[value_start] in "=<>!":
                raise QuerySyntaxError(f"one operator after {name}: = != > >= < <= or :", text, end, value_start + 1)
            real_op = "=" if op == ":" else op
            if real_op == "!=":
                real_op, negated = "=", not negated
            return FieldTerm(name.lower() if name.lower() in ("since", "until") else name, real_op, value,
                             negated=negated, start=value_start, end=after), after
    end = _read_bare(text, i)
    word = text[i:end]
    if any(o in word for o in ("=", "<", ">")):
        raise QuerySyntaxError(f"{word!r} is neither a word nor field=value: a field name is letters, digits "
                               "and _ . - @ /, starting with a letter", text, start, end)
    prefix = word.endswith("*") and len(word) > 1
    word = word.rstrip("*") if prefix else word
    if not any(char.isalnum() for char in word):
        raise QuerySyntaxError(f"{word!r} has no letter or digit to search for", text, start, end)
    return TextTerm(word, negated=negated, prefix=prefix), end
