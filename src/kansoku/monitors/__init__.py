"""Cron monitors (Sentry Crons' model): notice a scheduled job that failed, ran too long, or did not run.

::

    @kansoku.monitor("nightly-report", schedule="0 3 * * *", timezone="Europe/Berlin", max_runtime="1h")
    def nightly_report(): ...

    with kansoku.monitor("import-orders", schedule="15m"):
        import_orders()

Each run checks in `in_progress` when it starts and `ok` or `error` when it ends (its duration
measured), and is a `kansoku.job` run too (span, metrics, error event, log context). A shell cron
job checks in with `kansoku monitors checkin NAME --status ok`, a job on another host with
`curl -X POST -H 'Authorization: Bearer $KANSOKU_MONITOR_TOKEN' .../kansoku/api/checkins/NAME?status=ok`.
The alert engine evaluates every monitor on each tick (`kansoku.alerts.AlertEngine.tick`, in the
app's dispatcher or `kansoku worker`): a missed run, a failed run and a run over its maximum
runtime are notified once across every process sharing the store (`kansoku.store.monitors`), and
the next good run sends the recovery.

A check-in writes to the store on the caller's thread (two short transactions per run): monitors
are for jobs, never for a request path. A failing check-in is reported as kansoku's internal
error; it never fails the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Engine

from kansoku._delegate import wrap
from kansoku._safety import suppress_internal_errors
from kansoku.jobs import Job, JobRun
from kansoku.monitors.schedule import MonitorSpec, parse_monitors

__all__ = ["Monitor", "MonitorSpec", "checkin", "configure", "monitor", "parse_monitors", "reset"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    engine: Engine | None = None
    clock: Callable[[], float] = time.time
    known: dict[str, MonitorSpec] = field(default_factory=dict)  # from kansoku.toml


_STATE = _State()


def configure(engine: Engine | None, specs: tuple[MonitorSpec, ...] = (), clock: Callable[[], float] = time.time,
              ) -> None:
    """Where check-ins go, and the monitors of kansoku.toml (the runtime calls this)."""
    _STATE.engine = engine
    _STATE.clock = clock
    _STATE.known = {spec.name: spec for spec in specs}


def reset() -> None:
    """No store: check-ins are dropped (and reported)."""
    configure(None)


def checkin(name: str, status: str, *, checkin_id: str | None = None, duration: float | None = None,
            spec: MonitorSpec | None = None, source: str = "code", engine: Engine | None = None) -> dict[str, Any]:
    """Record one check-in of the monitor `name` (see `kansoku.store.monitors.checkin`); the result.

    Raises UnknownMonitor for a monitor defined nowhere, ValueError for a bad status, RuntimeError
    when there is no store (call `kansoku.setup()` or `instrument()` first).
    """
    from kansoku.store import monitors as stored

    target = engine if engine is not None else _STATE.engine
    if target is None:
        raise RuntimeError("no store for monitor check-ins: call kansoku.setup() (or instrument()) first")
    return stored.checkin(target, name, status, now=_STATE.clock(), spec=spec or _STATE.known.get(name),
                          checkin_id=checkin_id, duration=duration, source=source)


class _MonitoredRun:
    """A job run that checks in when it starts and when it ends."""

    def __init__(self, spec: MonitorSpec, run: JobRun) -> None:
        self.spec = spec
        self.run = run
        self.checkin_id: str | None = None
        with suppress_internal_errors("monitors.checkin"):
            self.checkin_id = checkin(spec.name, "in_progress", spec=spec)["checkin_id"]

    def resume(self) -> object:
        return self.run.resume()

    def suspend(self, token: object) -> None:
        self.run.suspend(token)

    def done(self, exc: BaseException | None) -> None:
        self.run.done(exc)
        with suppress_internal_errors("monitors.checkin"):
            checkin(self.spec.name, "ok" if exc is None else "error", checkin_id=self.checkin_id, spec=self.spec)


class Monitor:
    """A monitored job: `with` a block or decorate a function; each run checks in (see the module docs)."""

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self._job = Job(spec.name, None, {"monitor": spec.name})
        self._open: list[_MonitoredRun] = []

    def __enter__(self) -> JobRun:
        run = self._job.__enter__()
        monitored = _MonitoredRun(self.spec, run)
        self._open.append(monitored)
        return run

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        monitored = self._open.pop()
        self._job.__exit__(kind, exc, traceback)
        with suppress_internal_errors("monitors.checkin"):
            checkin(self.spec.name, "ok" if exc is None else "error", checkin_id=monitored.checkin_id,
                    spec=self.spec)

    def __call__(self, func: F) -> F:
        from kansoku import jobs

        spec = self.spec

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _MonitoredRun:
            return _MonitoredRun(spec, JobRun(jobs.state(), spec.name, fields={"monitor": spec.name}))

        return wrap(func, begin)


def monitor(name: str, schedule: Any = None, *, timezone: str = "UTC", margin: Any = 60.0,
            max_runtime: Any = 1800.0, description: str = "") -> Monitor:
    """A monitor by name: a decorator and a context manager (see the module docs).

    `schedule` is a crontab (`"0 3 * * *"`) or an interval (`"15m"`, `3600`), read in `timezone`;
    `margin` is how late a check-in may come, `max_runtime` how long a run may take (durations as
    `"90s"`, `"10m"`, `"1h"` or seconds). Without `schedule`, the monitor of that name in
    kansoku.toml is used. ConfigError for a bad crontab, interval or timezone.
    """
    if schedule is None:
        known = _STATE.known.get(name)
        if known is None:
            from kansoku.exceptions import ConfigError

            raise ConfigError(f"monitor {name!r} has no schedule: pass schedule='0 3 * * *' (or '1h'), or define it "
                              "in kansoku.toml under [[monitors]]")
        return Monitor(known)
    return Monitor(MonitorSpec.make(name, schedule, timezone=timezone, margin=margin, max_runtime=max_runtime,
                                    description=description, where=f"monitors[{name!r}]"))
