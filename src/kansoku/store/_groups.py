"""What a batch of events does to its groups: aggregates, regressions, the UPDATE that adds them.

Pure functions and one prepared statement, used by `EventWriter` inside its transaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Boolean, Float, Integer, String, bindparam, case, update
from sqlalchemy.sql.expression import ColumnElement

from kansoku.store.tables import error_groups
from kansoku.typing import ErrorChange, ErrorEvent

__all__ = [
    "GROUP_UPDATE",
    "SEVERITY_ORDER",
    "Group",
    "Row",
    "by_group",
    "cut",
    "event_row",
    "group_update",
    "new_group_row",
    "per_event",
    "regressing_event",
    "release_newer",
    "title_of",
    "user_of",
]

SEVERITY_ORDER: Final = ("low", "medium", "high", "critical", "emergency")
_RANK: Final = {name: rank for rank, name in enumerate(SEVERITY_ORDER)}
_VERSION: Final = re.compile(r"v?(\d+(?:\.\d+)*)(.*)", re.I)
_FINAL_SUFFIX: Final = re.compile(r"^(?:[+].*|[.-]?post\d*.*)?$", re.I)


def release_newer(release: str, than: str) -> bool:
    """Whether `release` is newer than `than` (versions compared by number, else any change).

    `1.10 > 1.9`, `1.0 > 1.0rc1`, `app@2.0 > app@1.5`; releases that are not versions (commit
    hashes, build names) are "newer" whenever they differ, as a deploy of another build is.
    """
    a, b = _version_key(release), _version_key(than)
    if a is None or b is None:
        return release != than
    return a > b


def _version_key(release: str) -> tuple[tuple[int, ...], int, str] | None:
    match = _VERSION.fullmatch(release.rsplit("@", 1)[-1].strip())
    if match is None:
        return None
    numbers = [int(part) for part in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 1.0 == 1.0.0
        numbers.pop()
    suffix = match.group(2)
    final = 1 if _FINAL_SUFFIX.match(suffix) else 0  # 1.0rc1 < 1.0 < 1.0.post1
    return tuple(numbers), final, suffix.lower()


def title_of(event: ErrorEvent) -> str:
    """`ValueError: the message's first line`, as lists show it."""
    short = event.get("exception_type", "Error").rsplit(".", 1)[-1]
    message = (event.get("message") or "").strip().splitlines()
    return f"{short}: {message[0]}" if message else short


def cut(value: Any, size: int) -> str | None:
    """`value` as a string of at most `size` characters (None stays None)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= size else text[: size - 1] + "…"


@dataclass
class Group:
    """What one batch adds to one group."""

    key: str
    first: ErrorEvent
    events: list[ErrorEvent] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    hours: Counter[int] = field(default_factory=Counter)

    @property
    def last(self) -> ErrorEvent:
        """The batch's latest event of this group."""
        return max(self.events, key=lambda e: e.get("timestamp", 0.0))


@dataclass
class Row:
    """A group's row as locked at the start of the batch."""

    id: int
    count: int
    status: str
    resolved_at: float | None
    resolved_in_release: str | None


def by_group(events: Sequence[ErrorEvent]) -> dict[str, Group]:
    """The batch's events by group key, with each group's users and hourly counts."""
    groups: dict[str, Group] = {}
    for event in events:
        key = event["group_key"]
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key, event)
        group.events.append(event)
        group.hours[int(event["timestamp"] // 3600)] += 1
        user = user_of(event)
        if user is not None:
            group.users.add(user)
    return groups


def user_of(event: ErrorEvent) -> str | None:
    """The event's user id, if it has one (for users affected)."""
    user = event.get("user") or {}
    value = user.get("id") or user.get("user_id") or user.get("username")
    return cut(value, 128) if value not in (None, "") else None


def new_group_row(group: Group) -> dict[str, Any]:
    """The row of a group that does not exist yet, from its first event (count 0)."""
    first = group.first
    return {
        "group_key": group.key,
        "fingerprint_parts": first.get("fingerprint_parts", []),
        "title": cut(first.get("title") or title_of(first), 512),
        "culprit": cut(first.get("culprit", ""), 512),
        "exception_type": cut(first.get("exception_type", "Error"), 256),
        "message": first.get("message", ""),
        "severity": first.get("severity", "low"),
        "category": cut(first.get("category", "application"), 32),
        "service": cut(first.get("service", ""), 128),
        "environment": cut(first.get("environment", ""), 64),
        "status": "unresolved",
        "first_seen": first["timestamp"],
        "last_seen": first["timestamp"],
        "count": 0,
        "users_affected": 0,
        "regressed": False,
        "first_release": cut(first.get("release"), 128),
        "last_release": cut(first.get("release"), 128),
        "last_event_id": first["event_id"],
        "project": cut(first.get("project"), 128),
    }


def regressing_event(group: Group, row: Row) -> ErrorEvent | None:
    """The first event of the batch that reopens a resolved group, if any.

    Resolved without a release: any event after the resolution. Resolved in a release: an event
    from a newer release (events of that release or older are the old code still running).
    """
    if row.status != "resolved":
        return None
    for event in sorted(group.events, key=lambda e: e["timestamp"]):
        release = event.get("release")
        if row.resolved_in_release and release:
            if release_newer(release, row.resolved_in_release):
                return event
        elif row.resolved_at is None or event["timestamp"] >= row.resolved_at:
            return event
    return None


def _rank(column: Any) -> ColumnElement[Any]:
    return case(_RANK, value=column, else_=-1)


def _bp(name: str, kind: Any) -> Any:
    return bindparam(name, type_=kind)


def _group_update_statement() -> Any:
    """UPDATE of one group by a batch; every new value is computed from the row in SQL."""
    g = error_groups.c
    first, last = _bp("b_first", Float), _bp("b_last", Float)
    regressed = _bp("b_regressed", Boolean)
    return (
        update(error_groups)
        .where(g.id == _bp("b_id", Integer))
        .values(
            count=g.count + _bp("b_n", Integer),
            first_seen=case((g.first_seen > first, first), else_=g.first_seen),
            last_seen=case((g.last_seen < last, last), else_=g.last_seen),
            last_release=case((g.last_seen <= last, _bp("b_release", String)), else_=g.last_release),
            last_event_id=case((g.last_seen <= last, _bp("b_event_id", String)), else_=g.last_event_id),
            severity=case((_rank(g.severity) < _bp("b_rank", Integer), _bp("b_severity", String)),
                          else_=g.severity),  # the highest seen
            status=_bp("b_status", String),
            regressed=case((regressed, True), else_=g.regressed),
            regressed_at=case((regressed, _bp("b_regressed_at", Float)), else_=g.regressed_at),
            resolved_at=case((regressed, None), else_=g.resolved_at),
            resolved_in_release=case((regressed, None), else_=g.resolved_in_release),
        )
    )


GROUP_UPDATE: Final = _group_update_statement()


def group_update(group: Group, row: Row, regressing: ErrorEvent | None, status: str) -> dict[str, Any]:
    """The parameters of GROUP_UPDATE for one group and batch."""
    last = group.last
    severity = max((e.get("severity", "low") for e in group.events), key=lambda s: _RANK.get(s, 0))
    return {
        "b_id": row.id,
        "b_n": len(group.events),
        "b_first": min(e["timestamp"] for e in group.events),
        "b_last": last["timestamp"],
        "b_release": cut(last.get("release"), 128),
        "b_event_id": last["event_id"],
        "b_severity": severity,
        "b_rank": _RANK.get(severity, 0),
        "b_status": status,
        "b_regressed": regressing is not None,
        "b_regressed_at": regressing["timestamp"] if regressing is not None else None,
    }


def per_event(
    events: Sequence[ErrorEvent], bases: dict[str, tuple[ErrorChange, ErrorEvent | None]]
) -> list[ErrorChange]:
    """One change per event, in the batch's order, with the group's running count."""
    seen: Counter[str] = Counter()
    out: list[ErrorChange] = []
    for event in events:
        key = event["group_key"]
        base, regressing = bases[key]
        seen[key] += 1
        out.append(ErrorChange(
            group_key=key, group_id=base["group_id"], new=base["new"] and seen[key] == 1,
            regression=regressing is event, count=base["count"] + seen[key], status=base["status"],
        ))
    return out


def event_row(event: ErrorEvent, group_id: int) -> dict[str, Any]:
    """The events-table row of one event."""
    return {
        "event_id": event["event_id"],
        "group_id": group_id,
        "timestamp": event["timestamp"],
        "severity": event.get("severity", "low"),
        "category": cut(event.get("category", "application"), 32),
        "release": cut(event.get("release"), 128),
        "user_id": user_of(event),
        "request_id": cut(event.get("request_id"), 128),
        "trace_id": cut(event.get("trace_id"), 32),
        "data": event,
    }
