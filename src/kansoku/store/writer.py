"""Batched writes of error events: one transaction per batch, exact counts across processes.

For each batch: create the groups not seen yet (INSERT .. ON CONFLICT DO NOTHING), lock the
batch's groups (SELECT .. FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds the write
lock), decide regressions, add the counts with `count = count + n` (never read-modify-write),
insert the events, the hourly buckets and the affected users, commit. Several threads and
processes can write the same group at once and the stored count stays exact.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from kansoku.store._engine import _json_dumps, write_transaction
from kansoku.store._groups import (
    GROUP_UPDATE,
    SEVERITY_ORDER,
    Group,
    Row,
    by_group,
    event_row,
    group_update,
    new_group_row,
    per_event,
    regressing_event,
    release_newer,
    title_of,
)
from kansoku.store.tables import error_buckets, error_events, error_group_users, error_groups
from kansoku.typing import ErrorChange, ErrorEvent

__all__ = ["SEVERITY_ORDER", "EventWriter", "release_newer", "title_of"]


class EventWriter:
    """Writes batches of prepared (fingerprinted, classified, redacted) events to the store.

    `write(events)` raises on a store error and leaves nothing half-written; the caller keeps
    the batch and retries. After a successful write, groups over `max_events_per_group` are
    trimmed (at most every `trim_interval` seconds per group).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_events_per_group: int = 100,
        trim_interval: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.engine = engine
        self.max_events_per_group = max_events_per_group
        self.trim_interval = trim_interval
        self._clock = clock
        self._trimmed: dict[int, float] = {}
        # What this writer knows exists already, to skip inserting it again (bounded caches).
        self._group_ids: dict[str, int] = {}
        self._users: set[tuple[int, str]] = set()
        self._pending_users: set[tuple[int, str]] = set()
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    def write(self, events: Sequence[ErrorEvent]) -> list[ErrorChange]:
        """Store `events` in one transaction; the change each made to its group, in order."""
        if not events:
            return []
        groups = by_group(events)
        self._pending_users.clear()
        try:
            with write_transaction(self.engine) as conn:
                rows = self._lock_groups(conn, groups)
                changes = per_event(events, self._update_groups(conn, groups, rows))
                self._insert_events(conn, events, changes)
                self._add_buckets(conn, groups, rows)
                self._add_users(conn, groups, rows)
        except Exception:
            self._group_ids.clear()  # the transaction rolled back: what it created may not exist
            raise
        self._users |= self._pending_users
        self._trim(changes)
        return changes

    # --- groups -------------------------------------------------------------------------------

    def _lock_groups(self, conn: Connection, groups: dict[str, Group]) -> dict[str, Row]:
        keys = sorted(groups)  # one order everywhere: no deadlock between processes
        new = [new_group_row(groups[key]) for key in keys if key not in self._group_ids]
        if new:
            self._insert_rows(conn, error_groups, new, "ON CONFLICT (group_key) DO NOTHING")
        g = error_groups.c
        statement = (
            select(g.id, g.group_key, g.count.label("n"), g.status, g.resolved_at, g.resolved_in_release)
            .where(g.group_key.in_(keys)).order_by(g.id).with_for_update()
        )
        rows = {r.group_key: Row(r.id, r.n, r.status, r.resolved_at, r.resolved_in_release)
                for r in conn.execute(statement)}
        if len(rows) < len(keys):  # a group known to this writer was deleted (retention): make it again
            for key in keys:
                self._group_ids.pop(key, None)
            return self._lock_groups(conn, groups)
        if len(self._group_ids) > 50_000:
            self._group_ids.clear()
        self._group_ids.update((key, row.id) for key, row in rows.items())
        return rows

    def _update_groups(
        self, conn: Connection, groups: dict[str, Group], rows: dict[str, Row]
    ) -> dict[str, tuple[ErrorChange, ErrorEvent | None]]:
        """Add the batch to each group; the group's state before it, and the regressing event."""
        out: dict[str, tuple[ErrorChange, ErrorEvent | None]] = {}
        params = []
        for key in sorted(groups):
            group, row = groups[key], rows[key]
            regressing = regressing_event(group, row)
            status = "unresolved" if regressing is not None else row.status
            params.append(group_update(group, row, regressing, status))
            base = ErrorChange(group_key=key, group_id=row.id, new=row.count == 0, regression=False,
                               count=row.count, status=status)
            out[key] = (base, regressing)
        conn.execute(GROUP_UPDATE, params)
        return out

    def _insert_events(
        self, conn: Connection, events: Sequence[ErrorEvent], changes: list[ErrorChange]
    ) -> None:
        rows = [event_row(event, change["group_id"]) for event, change in zip(events, changes, strict=True)]
        if not self._postgres:
            conn.execute(error_events.insert(), rows)
            return
        # COPY: PostgreSQL's bulk load, several times faster than row-by-row inserts.
        columns = list(rows[0])
        driver: Any = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(
                f"COPY {error_events.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                row["data"] = _json_dumps(row["data"])
                copy.write_row([row[c] for c in columns])

    def _add_buckets(self, conn: Connection, groups: dict[str, Group], rows: dict[str, Row]) -> None:
        values = [{"group_id": rows[key].id, "hour": hour, "count": n}
                  for key in sorted(groups) for hour, n in sorted(groups[key].hours.items())]
        self._insert_rows(conn, error_buckets, values, "ON CONFLICT (group_id, hour) DO UPDATE SET "
                          f"count = {error_buckets.name}.count + excluded.count")

    def _add_users(self, conn: Connection, groups: dict[str, Group], rows: dict[str, Row]) -> None:
        pairs = [(rows[key].id, user) for key in sorted(groups) for user in sorted(groups[key].users)
                 if (rows[key].id, user) not in self._users]
        if not pairs:  # every user already counted for its group (by this writer)
            return
        users = [{"group_id": group_id, "user_id": user} for group_id, user in pairs]
        self._insert_rows(conn, error_group_users, users, "ON CONFLICT (group_id, user_id) DO NOTHING")
        with_users = sorted({group_id for group_id, _ in pairs})
        # Exact: the group row is locked by this transaction, so no other writer adds users between.
        u = error_group_users.c
        counted = select(func.count()).where(u.group_id == error_groups.c.id).scalar_subquery()
        conn.execute(update(error_groups).where(error_groups.c.id.in_(with_users))
                     .values(users_affected=counted))
        if len(self._users) > 100_000:
            self._users.clear()
        self._pending_users.update(pairs)  # known once this transaction commits

    def _insert_rows(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]], conflict: str
    ) -> None:
        """INSERT .. ON CONFLICT of many rows in one statement per dialect's fast path.

        SQLite: executemany (a loop in C). PostgreSQL: one INSERT .. SELECT FROM unnest(arrays), as
        psycopg's executemany costs a round trip per row and multi-row VALUES a compile per size.
        """
        columns = list(rows[0])
        names = ", ".join(columns)
        json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
        if json_columns:
            rows = [{**r, **{c: _json_dumps(r[c]) for c in json_columns}} for r in rows]
        if not self._postgres:
            values = ", ".join(f":{c}" for c in columns)
            # S608: every name here is one of kansoku's own tables and columns; values are bound.
            statement = f"INSERT INTO {table.name} ({names}) VALUES ({values}) {conflict}"  # noqa: S608
            conn.execute(text(statement), rows)
            return
        casts = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(dialect=conn.dialect)}[])" for c in columns)
        unnest = f"SELECT * FROM unnest({casts})"  # noqa: S608 - own names, bound values
        statement = f"INSERT INTO {table.name} ({names}) {unnest} {conflict}"
        conn.execute(text(statement), {c: [r[c] for r in rows] for c in columns})

    # --- per-group cap --------------------------------------------------------------------------

    def _trim(self, changes: Iterable[ErrorChange]) -> None:
        now = self._clock()
        due = {c["group_id"] for c in changes if c["count"] > self.max_events_per_group
               and now - self._trimmed.get(c["group_id"], -1e18) >= self.trim_interval}
        if not due:
            return
        from kansoku.store.queries import trim_group

        with write_transaction(self.engine) as conn:
            for group_id in sorted(due):
                trim_group(conn, group_id, self.max_events_per_group)
                self._trimmed[group_id] = now
        if len(self._trimmed) > 10_000:  # bounded: forget the oldest half
            for group_id in sorted(self._trimmed, key=self._trimmed.__getitem__)[:5_000]:
                del self._trimmed[group_id]
