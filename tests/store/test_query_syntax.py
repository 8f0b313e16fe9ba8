"""The query syntax: terms, operators, quoting, negation, time ranges, and errors that point at the bad part."""

from __future__ import annotations

import pytest

from kansoku.store.query_syntax import FieldTerm, Query, QuerySyntaxError, TextTerm, parse, parse_duration_ms

NOW = 1_800_000_000.0


def test_every_kind_of_term() -> None:
    """Words, phrases, prefixes, field=value, route:, comparisons, != and - negation parse to their terms."""
    query = parse('"payment failed" pay* order_id=1234 route:/orders/{id} level>=warning duration>500ms '
                  'status!=200 -service=shop -timeout msg="said \\"hi\\""', now=NOW)
    assert [(type(t).__name__, *_shape(t)) for t in query.terms] == [
        ("TextTerm", "payment failed", False, True, False),
        ("TextTerm", "pay", False, False, True),
        ("FieldTerm", "order_id", "=", "1234", False),
        ("FieldTerm", "route", "=", "/orders/{id}", False),
        ("FieldTerm", "level", ">=", "warning", False),
        ("FieldTerm", "duration", ">", "500ms", False),
        ("FieldTerm", "status", "=", "200", True),
        ("FieldTerm", "service", "=", "shop", True),
        ("TextTerm", "timeout", True, False, False),
        ("FieldTerm", "msg", "=", 'said "hi"', False),
    ]


def _shape(term: TextTerm | FieldTerm) -> tuple[object, ...]:
    if isinstance(term, TextTerm):
        return term.text, term.negated, term.phrase, term.prefix
    return term.name, term.op, term.value, term.negated


def test_time_range() -> None:
    """since:/until: take a time ago (s m h d w) or an ISO time in UTC, and are not terms."""
    query = parse("since:1h until:2027-01-15T08:00 error", now=NOW)
    assert (query.since, query.until) == (NOW - 3600, 1_800_000_000.0)  # 2027-01-15T08:00:00Z
    assert query.terms == (TextTerm("error"),)
    assert parse("since:7d", now=NOW).since == NOW - 7 * 86_400


def test_empty_query_matches_everything() -> None:
    """An empty (or blank) query has no terms and no range."""
    assert parse("   ") == Query("   ")


@pytest.mark.parametrize(("text", "reason", "pointed"), [
    ('"payment failed', "unterminated quote", '"payment failed'),
    ("since:tomorrow", "is not a time", "tomorrow"),
    ("order_id=", "needs a value", "order_id="),
    ('""', "empty phrase", '""'),
    ("a<<b", "one operator", "<<"),
    ("-since:1h", "write since:VALUE", "-since:1h"),
    ("***", "no letter or digit", "***"),
])
def test_bad_queries_point_at_the_offending_part(text: str, reason: str, pointed: str) -> None:
    """A bad query raises QuerySyntaxError (a ValueError) whose message says why and marks where."""
    with pytest.raises(QuerySyntaxError) as caught:
        parse(text, now=NOW)
    error = caught.value
    assert isinstance(error, ValueError) and reason in str(error)
    assert text[error.start:error.end] == pointed
    assert str(error).splitlines()[2] == "  " + " " * error.start + "^" * (error.end - error.start)


def test_durations() -> None:
    """Durations read as milliseconds; a bare number is milliseconds."""
    assert [parse_duration_ms(v) for v in ("500ms", "1.5s", "2m", "250us", "40", "1h", "fast")] == [
        500.0, 1500.0, 120_000.0, 0.25, 40.0, 3_600_000.0, None]


def test_too_long_and_too_many() -> None:
    """Queries are bounded: length and number of terms."""
    with pytest.raises(QuerySyntaxError, match="too long"):
        parse("a" * 3000)
    with pytest.raises(QuerySyntaxError, match="too many terms"):
        parse(" ".join(f"w{n}" for n in range(40)))


def test_field_term_positions() -> None:
    """A field term remembers where its value is, for errors raised later (an unknown level)."""
    (term,) = parse("level>=loud").terms
    assert isinstance(term, FieldTerm) and "level>=loud"[term.start:term.end] == "loud"
