"""Classification: the chapter's severity and category defaults, configured rules, per-call values."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from kansoku.errors import ErrorTracker
from kansoku.errors.classify import Classifier, facts_of, parse_rules
from kansoku.exceptions import ConfigError
from kansoku.store import Store, queries


class HTTPError(Exception):
    """An exception with a status code, as web frameworks raise."""

    def __init__(self, status_code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.status_code = status_code


class PaymentError(Exception):
    """A business exception for the configured-rule tests."""


@pytest.mark.parametrize(("exc", "severity", "category"), [
    (SystemExit(1), "emergency", "system"),
    (KeyboardInterrupt(), "emergency", "application"),
    (MemoryError(), "emergency", "system"),
    (PermissionError("unauthorized access to /admin"), "critical", "security"),
    (ValueError("security token mismatch"), "critical", "security"),
    (HTTPError(503, "upstream down"), "high", "application"),
    (HTTPError(404, "no such order"), "medium", "application"),
    (ValueError("database is locked"), "high", "database"),
    (sqlite3.OperationalError("no such table: orders"), "low", "database"),
    (TimeoutError("timeout talking to payments"), "medium", "network"),
    (ConnectionRefusedError("database connection refused"), "high", "database"),
    (TimeoutError("database query timeout"), "high", "database"),
    (ConnectionRefusedError("connection refused by payments"), "low", "network"),
    (ValueError("request timeout"), "medium", "network"),
    (ValueError("connection reset by peer"), "low", "database"),  # the chapter checks database words first
    (ValueError("slow response from cache"), "low", "performance"),
    (ValueError("bad api response"), "low", "external_api"),
    (OSError("disk full"), "low", "system"),
    (ValueError("capital letters required"), "low", "application"),  # "api" only at a word's start
    (ValueError("amount must be positive"), "low", "application"),
])
def test_chapter_defaults(exc: BaseException, severity: str, category: str) -> None:
    """The default rules give the chapter's severity and category (types, status codes, keywords)."""
    facts = facts_of(exc, str(exc), getattr(exc, "status_code", None))
    classifier = Classifier()
    assert (classifier.severity(facts), classifier.category(facts)) == (severity, category)


def test_configured_rules_come_first_and_the_call_wins(store: Store,
                                                       make_tracker: Callable[..., ErrorTracker]) -> None:
    """Rules from settings.errors are tried before the defaults; values given to capture win over both."""
    tracker = make_tracker(errors={
        "severity_rules": [{"severity": "critical", "types": ["PaymentError"], "name": "payments"}],
        "category_rules": [{"category": "business_logic", "keywords": ["limit"]},
                           {"category": "external_api", "status": [502, 504]}],
    })
    ids = [tracker.capture(PaymentError("card declined")),
           tracker.capture(ValueError("over the limit")),
           tracker.capture(HTTPError(502, "bad gateway")),
           tracker.capture(PaymentError("database down"), severity="low", category="database")]
    assert tracker.flush(10)
    found = []
    for event_id in ids:
        group = queries.get_group(store.engine, event_id)
        assert group is not None
        event = next(e for e in group["events"] if e["event_id"] == event_id)
        found.append((event["severity"], event["category"]))
    assert found == [("critical", "application"), ("low", "business_logic"), ("high", "external_api"),
                     ("low", "database")]


def test_status_code_comes_from_the_request_too(make_tracker: Callable[..., ErrorTracker]) -> None:
    """A status code in the request info counts like one on the exception."""
    facts = facts_of(ValueError("x"), "x", 500)
    assert Classifier().severity(facts) == "high"


@pytest.mark.parametrize(("raw", "message"), [
    ([{"severity": "huge"}], r"severity_rules\[0\]: severity='huge' is not one of low, medium"),
    ([{"severity": "low", "types": []}], r"severity_rules\[0\].types: must be a non-empty list"),
    ([{"severity": "low", "status": [599, 500]}], r"status: must be a status code or a \[low, high\] range"),
    ([{"severity": "low", "colour": "red"}], r"unknown key 'colour'"),
])
def test_bad_rules_are_config_errors(raw: list[dict[str, object]], message: str) -> None:
    """A bad rule names itself, the value and what is allowed."""
    with pytest.raises(ConfigError, match=message):
        parse_rules(raw, kind="severity")


def test_type_keywords_match_words_of_the_type_name() -> None:
    """`os` matches OSError's words, not PostgresError's."""

    class PostgresError(Exception):
        pass

    classifier = Classifier()
    assert classifier.category(facts_of(PostgresError(), "", None)) == "application"
    assert classifier.category(facts_of(OSError(), "", None)) == "system"
