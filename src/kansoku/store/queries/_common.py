"""What the query modules share: the allowed filter values, the row shape, the two run helpers."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Engine

from kansoku.store.tables import error_groups

STATUSES: Final = ("unresolved", "resolved", "ignored")
SEVERITIES: Final = ("low", "medium", "high", "critical", "emergency")
CATEGORIES: Final = ("application", "system", "database", "network", "security", "performance",
                     "business_logic", "external_api")
SORTS: Final = ("last_seen", "count", "first_seen")
MAX_LIMIT: Final = 200

Row = dict[str, Any]

_G = error_groups.c
LIST_COLUMNS: Final = (
    _G.id, _G.group_key, _G.title, _G.culprit, _G.exception_type, _G.severity, _G.category, _G.service,
    _G.environment, _G.status, _G.first_seen, _G.last_seen, _G.count, _G.users_affected, _G.regressed,
    _G.regressed_at, _G.resolved_at, _G.resolved_in_release, _G.first_release, _G.last_release,
    _G.last_event_id, _G.fingerprint_parts, _G.project,
)
"""The columns of a group in lists (everything but the message)."""


def as_row(mapping: Any) -> Row:
    """A result row as a plain dict; `regressed` as a bool whatever the driver returns."""
    data = dict(mapping)
    if "regressed" in data:
        data["regressed"] = bool(data["regressed"])
    return data


def rows(engine: Engine, statement: Any) -> list[Row]:
    """Run a SELECT; every row as a dict."""
    with engine.connect() as conn:
        return [as_row(row) for row in conn.execute(statement).mappings()]


def one(engine: Engine, statement: Any) -> Row | None:
    """Run a SELECT; the first row as a dict, or None."""
    found = rows(engine, statement)
    return found[0] if found else None
