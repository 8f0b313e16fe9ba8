"""Cron monitors in the store: definitions, check-ins, and the claims that make evaluation happen once.

Every process and host sharing the store may evaluate; each decision is a compare-and-set, so
exactly one of them wins it and notifies:

- a missed run: `UPDATE monitors SET next_expected_at = <next> WHERE id = ? AND next_expected_at = <seen>`;
- a run over its maximum runtime: `UPDATE checkins SET status = 'timeout' WHERE id = ? AND status = 'in_progress'`;
- a failed run: `UPDATE checkins SET notified = true WHERE id = ? AND NOT notified`;
- a recovery: `UPDATE monitors SET alerting = false WHERE id = ? AND alerting`.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kansoku.monitors.schedule import MonitorSpec
from kansoku.store import write_transaction
from kansoku.store.tables import monitor_checkins, monitors

__all__ = [
    "STATUSES",
    "Claimed",
    "UnknownMonitor",
    "checkin",
    "claim_failures",
    "claim_missed",
    "claim_recoveries",
    "claim_timeouts",
    "get_monitor",
    "list_monitors",
    "spec_of",
    "upsert",
]

STATUSES: Final = ("in_progress", "ok", "error")
_HOST: Final = socket.gethostname()[:255]
_M, _C = monitors.c, monitor_checkins.c


class UnknownMonitor(LookupError):
    """A check-in for a monitor that is defined nowhere (code, kansoku.toml or an earlier check-in)."""


@dataclass(frozen=True)
class Claimed:
    """One decision this process won: `problem` is missed, failed, timeout or recovered."""

    problem: str
    monitor: dict[str, Any]
    checkin: dict[str, Any] | None


def _insert(engine: Engine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def _definition(spec: MonitorSpec) -> dict[str, Any]:
    return {"schedule_kind": spec.schedule_kind, "schedule": spec.schedule, "timezone": spec.timezone,
            "margin_seconds": spec.margin, "max_runtime_seconds": spec.max_runtime, "description": spec.description}


def upsert(engine: Engine, spec: MonitorSpec, now: float, conn: Connection | None = None) -> int:
    """Create the monitor (its first run expected by the schedule from `now`), or update its definition
    (never its state); its row id."""
    if conn is None:
        with write_transaction(engine) as own:
            return upsert(engine, spec, now, own)
    values = _definition(spec)
    statement = _insert(engine)(monitors).values(name=spec.name, status="new", alerting=False, created_at=now,
                                                 updated_at=now, next_expected_at=spec.next_run(now), **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={**values, "updated_at": now}))
    return int(conn.execute(select(_M.id).where(_M.name == spec.name)).scalar_one())


def spec_of(row: Mapping[str, Any]) -> MonitorSpec:
    """The definition stored in a monitor row."""
    return MonitorSpec(name=row["name"], schedule_kind=row["schedule_kind"], schedule=row["schedule"],
                       timezone=row["timezone"], margin=row["margin_seconds"], max_runtime=row["max_runtime_seconds"],
                       description=row["description"])


def checkin(
    engine: Engine, name: str, status: str, *, now: float, spec: MonitorSpec | None = None,
    checkin_id: str | None = None, duration: float | None = None, source: str = "code",
) -> dict[str, Any]:
    """Record a check-in; returns {checkin_id, monitor, status, duration}.

    `in_progress` opens a run (its id is returned); `ok` or `error` with that `checkin_id` closes
    it (duration measured), without one records a finished run (`duration` as given). `spec`
    defines or updates the monitor; without it the monitor must exist. UnknownMonitor otherwise;
    ValueError for a bad status.
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
    with write_transaction(engine) as conn:
        if spec is not None:
            upsert(engine, spec, now, conn)
        row = conn.execute(select(monitors).where(_M.name == name)).mappings().first()
        if row is None:
            raise UnknownMonitor(f"no monitor named {name!r}: define it in code (kansoku.monitor(...)), in "
                                 "kansoku.toml ([[monitors]]) or give its schedule with the check-in")
        opened = None
        if checkin_id is not None:
            opened = conn.execute(select(monitor_checkins).where(
                _C.checkin_id == checkin_id, _C.monitor_id == row["id"])).mappings().first()
        if opened is not None and status != "in_progress":
            duration = max(now - float(opened["started_at"]), 0.0) if duration is None else duration
            conn.execute(update(monitor_checkins).where(_C.id == opened["id"]).values(
                status=status, finished_at=now, duration=duration))
        else:
            checkin_id = checkin_id or uuid.uuid4().hex
            finished = None if status == "in_progress" else now
            started = now - duration if duration is not None and finished is not None else now
            conn.execute(monitor_checkins.insert().values(
                monitor_id=row["id"], checkin_id=checkin_id, status=status, started_at=started,
                finished_at=finished, duration=duration, source=source, host=_HOST, notified=False))
        next_expected = spec_of(dict(row)).next_run(now)
        conn.execute(update(monitors).where(_M.id == row["id"]).values(
            status=status, last_checkin_at=now, next_expected_at=next_expected, updated_at=now))
    return {"checkin_id": checkin_id, "monitor": name, "status": status, "duration": duration,
            "next_expected_at": next_expected}


# --- reads ----------------------------------------------------------------------------------------


def list_monitors(engine: Engine) -> list[dict[str, Any]]:
    """Every monitor with its state, by name."""
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(monitors).order_by(_M.name)).mappings()]


def get_monitor(engine: Engine, name: str, *, runs: int = 20) -> dict[str, Any] | None:
    """One monitor with its last `runs` check-ins (newest first), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(monitors).where(_M.name == name)).mappings().first()
        if row is None:
            return None
        query = (select(monitor_checkins).where(_C.monitor_id == row["id"])
                 .order_by(_C.started_at.desc(), _C.id.desc()).limit(runs))
        checkins = [dict(r) for r in conn.execute(query).mappings()]
    return {**dict(row), "checkins": checkins}


# --- the claims -------------------------------------------------------------------------------------


def claim_missed(engine: Engine, now: float) -> list[Claimed]:
    """Monitors whose expected run did not check in by its time plus margin, claimed by this process."""
    with engine.connect() as conn:
        due = [dict(r) for r in conn.execute(select(monitors).where(
            _M.next_expected_at.is_not(None), _M.next_expected_at + _M.margin_seconds < now)).mappings()]
    won: list[Claimed] = []
    for row in due:
        expected = float(row["next_expected_at"])
        upcoming = spec_of(row).next_run(now)
        with write_transaction(engine) as conn:
            claimed = conn.execute(update(monitors).where(_M.id == row["id"], _M.next_expected_at == expected)
                                   .values(next_expected_at=upcoming, status="missed", alerting=True,
                                           updated_at=now)).rowcount == 1
            if not claimed:
                continue
            checkin_row = {"monitor_id": row["id"], "checkin_id": uuid.uuid4().hex, "status": "missed",
                           "started_at": expected, "expected_at": expected, "source": "evaluator", "host": _HOST,
                           "notified": True}
            conn.execute(monitor_checkins.insert().values(**checkin_row))
        won.append(Claimed("missed", {**row, "next_expected_at": upcoming}, checkin_row))
    return won


def claim_timeouts(engine: Engine, now: float) -> list[Claimed]:
    """Runs still in progress past their monitor's maximum runtime, claimed by this process."""
    query = (select(monitor_checkins, monitors.c.name, monitors.c.max_runtime_seconds)
             .join(monitors, _M.id == _C.monitor_id)
             .where(_C.status == "in_progress", _C.started_at + _M.max_runtime_seconds < now))
    with engine.connect() as conn:
        due = [dict(r) for r in conn.execute(query).mappings()]
    won: list[Claimed] = []
    for row in due:
        with write_transaction(engine) as conn:
            if conn.execute(update(monitor_checkins).where(_C.id == row["id"], _C.status == "in_progress")
                            .values(status="timeout", notified=True)).rowcount != 1:
                continue
            conn.execute(update(monitors).where(_M.id == row["monitor_id"])
                         .values(status="timeout", alerting=True, updated_at=now))
            monitor = dict(conn.execute(select(monitors).where(_M.id == row["monitor_id"])).mappings().one())
        won.append(Claimed("timeout", monitor, row))
    return won


def claim_failures(engine: Engine, now: float) -> list[Claimed]:
    """Runs that checked in `error`, not yet notified, claimed by this process."""
    query = select(monitor_checkins).where(_C.status == "error", _C.notified.is_(False))
    with engine.connect() as conn:
        due = [dict(r) for r in conn.execute(query).mappings()]
    won: list[Claimed] = []
    for row in due:
        with write_transaction(engine) as conn:
            if conn.execute(update(monitor_checkins).where(_C.id == row["id"], _C.notified.is_(False))
                            .values(notified=True)).rowcount != 1:
                continue
            conn.execute(update(monitors).where(_M.id == row["monitor_id"]).values(alerting=True))
            monitor = dict(conn.execute(select(monitors).where(_M.id == row["monitor_id"])).mappings().one())
        won.append(Claimed("failed", monitor, row))
    return won


def claim_recoveries(engine: Engine, now: float) -> list[Claimed]:
    """Monitors that were notified of a problem and have checked in `ok` since, claimed by this process."""
    with engine.connect() as conn:
        due = [dict(r) for r in conn.execute(select(monitors).where(
            and_(_M.alerting.is_(True), _M.status == "ok"))).mappings()]
    won: list[Claimed] = []
    for row in due:
        with write_transaction(engine) as conn:
            if conn.execute(update(monitors).where(_M.id == row["id"], _M.alerting.is_(True), _M.status == "ok")
                            .values(alerting=False, updated_at=now)).rowcount != 1:
                continue
        won.append(Claimed("recovered", row, None))
    return won
