"""Severity (low..emergency) and category of an error, from ordered, data-driven rules.

The defaults are the chapter's `_determine_severity` and `_categorize_error` (exception types,
HTTP status codes, keywords in the message), written as data; a few rules on well-known exception
types come first for categories, because a type says more than a word in a message. Rules from
the configuration (`[[errors.severity_rules]]`, `[[errors.category_rules]]`) are tried before the
defaults, the first match wins, and a value given to the capture call overrides them all.

Keywords match at the start of a word of the message (`sql` matches "sqlite" but "api" does not
match "capital"); type keywords match words of the CamelCase type name (`os` matches `OSError`,
not `PostgresError`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from kansoku.exceptions import ConfigError

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORY_RULES",
    "DEFAULT_SEVERITY_RULES",
    "SEVERITIES",
    "Classifier",
    "Facts",
    "Rule",
    "facts_of",
    "parse_rules",
]

SEVERITIES: Final = ("low", "medium", "high", "critical", "emergency")
CATEGORIES: Final = ("application", "system", "database", "network", "security", "performance",
                     "business_logic", "external_api")
_CAMEL: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


class Facts(NamedTuple):
    """What the rules look at, computed once per event."""

    type_names: frozenset[str]  # every class of the exception's MRO, bare and qualified
    type_words: tuple[str, ...]  # lower-cased words of the exception's type name
    message: str  # lower-cased
    status: int | None


@dataclass(frozen=True)
class Rule:
    """`value` applies when every condition given matches (a rule with none always matches)."""

    value: str
    name: str = ""
    types: frozenset[str] = frozenset()
    type_keywords: tuple[str, ...] = ()
    keywords: re.Pattern[str] | None = None
    status: tuple[int, int] | None = None

    def matches(self, facts: Facts) -> bool:
        """Whether the event's facts satisfy every condition of the rule."""
        if self.types and self.types.isdisjoint(facts.type_names):
            return False
        if self.type_keywords and not any(w.startswith(self.type_keywords) for w in facts.type_words):
            return False
        if self.keywords is not None and self.keywords.search(facts.message) is None:
            return False
        if self.status is not None:
            return facts.status is not None and self.status[0] <= facts.status <= self.status[1]
        return True


def _words(*keywords: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(k.lower()) for k in keywords) + ")")


def _rule(value: str, name: str, **conditions: Any) -> Rule:
    if "keywords" in conditions:
        conditions["keywords"] = _words(*conditions["keywords"])
    if "types" in conditions:
        conditions["types"] = frozenset(conditions["types"])
    return Rule(value, name, **conditions)


DEFAULT_SEVERITY_RULES: Final = (  # the chapter's _determine_severity, in its order
    _rule("emergency", "fatal types", types=("SystemExit", "KeyboardInterrupt", "MemoryError")),
    _rule("critical", "security words", keywords=("security", "unauthorized")),
    _rule("high", "server error status", status=(500, 599)),
    _rule("medium", "client error status", status=(400, 499)),
    _rule("high", "database words", keywords=("database", "sql")),
    _rule("medium", "slowness words", keywords=("timeout", "performance")),
    _rule("low", "default"),
)

DEFAULT_CATEGORY_RULES: Final = (
    _rule("database", "database types", types=(
        "sqlalchemy.exc.SQLAlchemyError", "sqlite3.Error", "psycopg.Error", "psycopg2.Error",
        "asyncpg.exceptions.PostgresError", "pymysql.err.MySQLError")),
    # A refused connection or a timeout that says it was the database's is the database's.
    _rule("database", "network types with database words", types=("ConnectionError", "TimeoutError"),
          keywords=("database", "sql", "postgres", "postgresql", "mysql", "sqlite")),
    _rule("network", "network types", types=(
        "ConnectionError", "TimeoutError", "socket.gaierror", "httpx.TransportError",
        "requests.exceptions.ConnectionError", "requests.exceptions.Timeout")),
    _rule("external_api", "HTTP status types",
          types=("httpx.HTTPStatusError", "requests.exceptions.HTTPError")),
    # the chapter's _categorize_error, in its order
    _rule("security", "security words", keywords=("unauthorized", "forbidden", "security", "authentication")),
    _rule("database", "database words", keywords=("database", "sql", "connection", "query")),
    _rule("network", "network words", keywords=("network", "connection", "timeout", "unreachable")),
    _rule("performance", "performance words", keywords=("timeout", "slow", "performance", "memory")),
    _rule("external_api", "API words", keywords=("api", "http", "request", "response")),
    _rule("system", "system types", type_keywords=("system", "os", "memory", "disk")),
    _rule("application", "default"),
)


def _type_names(cls: type) -> frozenset[str]:
    names = set()
    for klass in cls.__mro__:
        names.add(klass.__qualname__)
        names.add(f"{klass.__module__}.{klass.__qualname__}")
    return frozenset(names)


_FACT_CACHE: dict[type, tuple[frozenset[str], tuple[str, ...]]] = {}


def facts_of(exc: BaseException, message: str, status: int | None) -> Facts:
    """The facts of one exception (type names cached per class)."""
    cls = type(exc)
    cached = _FACT_CACHE.get(cls)
    if cached is None:
        words = tuple(w.lower() for w in _CAMEL.findall(cls.__name__))
        cached = (_type_names(cls), words)
        if len(_FACT_CACHE) < 5_000:
            _FACT_CACHE[cls] = cached
    return Facts(cached[0], cached[1], message[:2000].lower(), status)


class Classifier:
    """Severity and category from ordered rules; the first match wins."""

    def __init__(
        self,
        severity_rules: Sequence[Rule] = DEFAULT_SEVERITY_RULES,
        category_rules: Sequence[Rule] = DEFAULT_CATEGORY_RULES,
    ) -> None:
        self.severity_rules = tuple(severity_rules)
        self.category_rules = tuple(category_rules)
        # Per exception class, the rules its type does not already rule out (bounded).
        self._for_type: dict[frozenset[str], tuple[tuple[Rule, ...], tuple[Rule, ...]]] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Classifier:
        """Configured rules (`settings.errors`) first, then the defaults."""
        severity = parse_rules(config.get("severity_rules", ()), kind="severity")
        category = parse_rules(config.get("category_rules", ()), kind="category")
        return cls((*severity, *DEFAULT_SEVERITY_RULES), (*category, *DEFAULT_CATEGORY_RULES))

    def severity(self, facts: Facts) -> str:
        """The severity of the first matching rule (`low` if none does)."""
        return _first(self._candidates(facts)[0], facts, "low")

    def category(self, facts: Facts) -> str:
        """The category of the first matching rule (`application` if none does)."""
        return _first(self._candidates(facts)[1], facts, "application")

    def _candidates(self, facts: Facts) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        found = self._for_type.get(facts.type_names)
        if found is None:
            found = (_type_allows(self.severity_rules, facts), _type_allows(self.category_rules, facts))
            if len(self._for_type) >= 5_000:
                self._for_type.clear()
            self._for_type[facts.type_names] = found
        return found


def _type_allows(rules: Iterable[Rule], facts: Facts) -> tuple[Rule, ...]:
    """The rules whose type conditions this exception's type meets (the others cannot match)."""
    kept = []
    for rule in rules:
        if rule.types and rule.types.isdisjoint(facts.type_names):
            continue
        if rule.type_keywords and not any(w.startswith(rule.type_keywords) for w in facts.type_words):
            continue
        kept.append(rule)
    return tuple(kept)


def _first(rules: Iterable[Rule], facts: Facts, default: str) -> str:
    for rule in rules:
        if rule.matches(facts):
            return rule.value
    return default


_RULE_KEYS: Final = frozenset(
    {"severity", "category", "name", "types", "type_keywords", "keywords", "status"})


def parse_rules(raw: Iterable[Mapping[str, Any]], *, kind: str) -> list[Rule]:
    """Rules from configuration; ConfigError names the bad entry and what is allowed."""
    allowed = SEVERITIES if kind == "severity" else CATEGORIES
    rules = []
    for index, item in enumerate(raw):
        where = f"errors.{kind}_rules[{index}]"
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; "
                              f"use {kind}, name, types, type_keywords, keywords, status")
        value = item.get(kind)
        if value not in allowed:
            raise ConfigError(f"{where}: {kind}={value!r} is not one of {', '.join(allowed)}")
        conditions: dict[str, Any] = {}
        for key in ("types", "type_keywords", "keywords"):
            if key in item:
                conditions[key] = _strings(item[key], f"{where}.{key}")
        if "type_keywords" in conditions:
            conditions["type_keywords"] = tuple(k.lower() for k in conditions["type_keywords"])
        if "status" in item:
            conditions["status"] = _status_range(item["status"], f"{where}.status")
        rules.append(_rule(str(value), str(item.get("name") or f"{kind} rule {index}"), **conditions))
    return rules


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a non-empty list of strings")
    return tuple(value)


def _status_range(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (isinstance(value, list | tuple) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value[0] <= value[1]):
        return int(value[0]), int(value[1])
    raise ConfigError(f"{where}: must be a status code or a [low, high] range, for example [500, 599]")
