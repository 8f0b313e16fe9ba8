"""Cron monitor commands: `monitors list|show|checkin` (check-ins for shell cron jobs)."""

from __future__ import annotations

import time
from typing import Any

import click

from kansoku.cli._common import (
    DB_URL,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JSON,
    CliError,
    echo_json,
    echo_table,
    format_time,
    load_settings_or_exit,
    monitors_or_exit,
    open_store,
)


@click.group()
def monitors() -> None:
    """Cron monitors: list them, show their runs, check in from a shell job.

    A monitor is a scheduled job kansoku expects to run (a crontab or an interval); a run that
    does not check in by its time plus margin, fails, or runs past its maximum runtime is alerted.
    """


def _specs(settings: Any) -> dict[str, Any]:
    return {spec.name: spec for spec in monitors_or_exit(settings)}


@monitors.command("list")
@JSON
@DB_URL
def monitors_list(as_json: bool, database_url: str | None) -> None:
    """Every monitor: schedule, status, last check-in and the run expected next.

    \b
    Examples:
      kansoku monitors list
      kansoku monitors list --json | jq '.[] | select(.status != "ok") | .name'
    """
    from kansoku.monitors.schedule import utc_iso
    from kansoku.store import monitors as stored

    settings = load_settings_or_exit(**({"database_url": database_url} if database_url else {}))
    _specs(settings)
    with open_store(settings, read_only=True) as store:
        rows = stored.list_monitors(store.engine)
    if as_json:
        echo_json([{**row, "next_expected": utc_iso(row["next_expected_at"])} for row in rows])
        return
    if not rows:
        click.echo("no monitors yet: decorate a job with @kansoku.monitor(...), add [[monitors]] to kansoku.toml, "
                   "or check in with `kansoku monitors checkin NAME --schedule '0 3 * * *'`")
        return
    shown = [{**row, "schedule": _schedule(row), "last_checkin": format_time(row["last_checkin_at"]),
              "next_expected": format_time(row["next_expected_at"])} for row in rows]
    echo_table(shown, ["name", "status", "schedule", "last_checkin", "next_expected"])


def _schedule(row: dict[str, Any]) -> str:
    from kansoku.store.monitors import spec_of

    return spec_of(row).describe()


@monitors.command("show")
@click.argument("name")
@click.option("--runs", default=20, show_default=True, type=click.IntRange(1, 500), help="Recent runs to show.")
@JSON
@DB_URL
def monitors_show(name: str, runs: int, as_json: bool, database_url: str | None) -> None:
    """One monitor and its recent runs (status, duration, time).

    \b
    Examples:
      kansoku monitors show nightly-report
      kansoku monitors show nightly-report --runs 5 --json
    """
    from kansoku.store import monitors as stored

    settings = load_settings_or_exit(**({"database_url": database_url} if database_url else {}))
    with open_store(settings, read_only=True) as store:
        found = stored.get_monitor(store.engine, name, runs=runs)
    if found is None:
        raise CliError(f"no monitor named {name!r}; `kansoku monitors list` shows them", EXIT_NOT_FOUND)
    if as_json:
        echo_json(found)
        return
    click.echo(f"{found['name']}  [{found['status']}]  {_schedule(found)}, margin {found['margin_seconds']:g}s, "
               f"max runtime {found['max_runtime_seconds']:g}s")
    click.echo(f"  last check-in {format_time(found['last_checkin_at']) or '-'} · next expected "
               f"{format_time(found['next_expected_at']) or '-'}")
    if found["checkins"]:
        rows = [{**c, "started": format_time(c["started_at"]),
                 "duration": "" if c["duration"] is None else f"{c['duration']:.2f}s"} for c in found["checkins"]]
        echo_table(rows, ["started", "status", "duration", "source", "host", "checkin_id"])


@monitors.command("checkin")
@click.argument("name")
@click.option("--status", type=click.Choice(["ok", "error", "in_progress"]), required=True,
              help="in_progress when the job starts; ok or error when it ends.")
@click.option("--checkin-id", metavar="ID", help="The id `--status in_progress` printed: closes that run.")
@click.option("--duration", type=click.FloatRange(min=0), metavar="SECONDS", help="How long the run took.")
@click.option("--schedule", metavar="CRON|INTERVAL", help="Define (or change) the monitor: '0 3 * * *' or '1h'.")
@click.option("--timezone", metavar="TZ", help="The schedule's timezone (with --schedule; default UTC).")
@click.option("--margin", metavar="DURATION", help="How late a check-in may come (with --schedule; default 60s).")
@click.option("--max-runtime", metavar="DURATION", help="How long a run may take (with --schedule; default 30m).")
@JSON
@DB_URL
def monitors_checkin(name: str, status: str, checkin_id: str | None, duration: float | None,
                     schedule: str | None, timezone: str | None, margin: str | None, max_runtime: str | None,
                     as_json: bool, database_url: str | None) -> None:
    """Check in a run of the monitor NAME (for shell cron jobs); prints the check-in id.

    \b
    Examples:
      kansoku monitors checkin backup --status ok
      id=$(kansoku monitors checkin backup --status in_progress) && ./backup.sh \\
        && kansoku monitors checkin backup --status ok --checkin-id "$id" \\
        || kansoku monitors checkin backup --status error --checkin-id "$id"
      kansoku monitors checkin backup --status ok --schedule '0 3 * * *' --timezone Europe/Berlin
    """
    from kansoku.exceptions import ConfigError
    from kansoku.monitors import MonitorSpec
    from kansoku.store import monitors as stored

    settings = load_settings_or_exit(**({"database_url": database_url} if database_url else {}))
    spec = _specs(settings).get(name)
    if schedule is not None:
        try:
            spec = MonitorSpec.make(name, schedule, timezone=timezone or "UTC", margin=margin or 60.0,
                                    max_runtime=max_runtime or 1800.0, where=f"monitors[{name!r}]")
        except ConfigError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    elif timezone or margin or max_runtime:
        raise CliError("--timezone, --margin and --max-runtime go with --schedule", EXIT_USAGE)
    with open_store(settings) as store:
        try:
            result = stored.checkin(store.engine, name, status, now=time.time(), spec=spec, checkin_id=checkin_id,
                                    duration=duration, source="cli")
        except stored.UnknownMonitor as exc:
            raise CliError(f"{exc} (--schedule '0 3 * * *')", EXIT_NOT_FOUND) from None
    if as_json:
        echo_json(result)
    else:
        click.echo(result["checkin_id"])
