"""A monitor's definition and its schedule: when the next run is due, and by when it must have checked in.

A schedule is a crontab (`"0 3 * * *"`, five fields, read by croniter in the monitor's timezone,
so `0 3 * * *` in `Europe/Berlin` follows daylight saving time) or an interval (`"10m"`, `"1h"`,
`"90s"`, `"2d"`, or a number of seconds). A run is *missed* when no check-in came by its expected
time plus the margin; a run is *over its runtime* when it checked in `in_progress` and did not
finish within `max_runtime`. Bad input raises `ConfigError` saying what is wrong and what to write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from kansoku.exceptions import ConfigError

__all__ = ["MonitorSpec", "parse_duration", "parse_monitors", "parse_schedule"]

_INTERVAL: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*\Z", re.IGNORECASE)
_UNITS: Final = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}\Z")
_KEYS: Final = frozenset({"name", "schedule", "timezone", "margin", "max_runtime", "description"})


def parse_duration(value: Any, what: str) -> float:
    """Seconds from `"10m"`, `"1h"`, `"90s"`, `"2d"` or a number of seconds; ConfigError otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} = {value!r}: expected a duration such as 90, '90s', '10m', '1h' or '2d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _INTERVAL.match(str(value))
        if match is None:
            raise ConfigError(f"{what} = {value!r}: expected a duration such as 90, '90s', '10m', '1h' or '2d'")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ConfigError(f"{what} = {value!r}: a duration must be more than 0 seconds")
    return seconds


def parse_schedule(value: Any, what: str = "schedule") -> tuple[str, str]:
    """(`"crontab"`, the expression) or (`"interval"`, seconds as text); ConfigError naming the problem."""
    if isinstance(value, str) and (len(value.split()) > 1 or "*" in value):  # meant as a crontab
        expression = " ".join(value.split())
        if len(expression.split()) != 5 or not croniter.is_valid(expression):
            raise ConfigError(f"{what} = {value!r}: not a valid crontab; write five fields, minute hour day-of-month "
                              "month day-of-week, such as '0 3 * * *' (03:00 every day) or '*/15 * * * *'")
        return "crontab", expression
    try:
        return "interval", repr(parse_duration(value, what))
    except ConfigError:
        raise ConfigError(f"{what} = {value!r}: expected a crontab such as '0 3 * * *' or an interval such as "
                          "'10m', '1h' or 3600 (seconds)") from None


def parse_timezone(value: Any, what: str = "timezone") -> str:
    """An IANA timezone name (`"UTC"`, `"Europe/Berlin"`); ConfigError otherwise."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} = {value!r}: expected an IANA timezone name such as 'UTC' or 'Europe/Berlin'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{what} = {value!r}: unknown timezone; use an IANA name such as 'UTC', "
                          "'Europe/Berlin' or 'America/New_York'") from None
    return value


@dataclass(frozen=True)
class MonitorSpec:
    """One monitor: a name, a schedule, its timezone, the check-in margin and the maximum runtime (seconds)."""

    name: str
    schedule_kind: str
    schedule: str
    timezone: str = "UTC"
    margin: float = 60.0
    max_runtime: float = 1800.0
    description: str = ""

    @classmethod
    def make(cls, name: Any, schedule: Any, *, timezone: str = "UTC", margin: Any = 60.0,
             max_runtime: Any = 1800.0, description: str = "", where: str = "monitor") -> MonitorSpec:
        """A checked spec; ConfigError names the bad field (`where` prefixes the names)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name = {name!r}: 1-100 letters, digits, '.', '_', ':' or '-', "
                              "starting with a letter or digit")
        kind, expression = parse_schedule(schedule, f"{where}.schedule")
        return cls(name=name, schedule_kind=kind, schedule=expression,
                   timezone=parse_timezone(timezone, f"{where}.timezone"),
                   margin=parse_duration(margin, f"{where}.margin"),
                   max_runtime=parse_duration(max_runtime, f"{where}.max_runtime"), description=str(description))

    def next_run(self, after: float) -> float:
        """The first scheduled time strictly after `after` (epoch seconds)."""
        if self.schedule_kind == "interval":
            return after + float(self.schedule)
        start = datetime.fromtimestamp(after, ZoneInfo(self.timezone))
        found = croniter(self.schedule, start).get_next(datetime)
        assert isinstance(found, datetime)
        return found.timestamp()

    def describe(self) -> str:
        """The schedule as people read it: `0 3 * * * (Europe/Berlin)` or `every 600s`."""
        if self.schedule_kind == "interval":
            return f"every {float(self.schedule):g}s"
        return f"{self.schedule} ({self.timezone})"


def parse_monitors(raw: Any) -> tuple[MonitorSpec, ...]:
    """The `[[monitors]]` tables of kansoku.toml; ConfigError names the bad entry and key."""
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise ConfigError("monitors: expected a list of tables ([[monitors]] in kansoku.toml)")
    specs: list[MonitorSpec] = []
    for index, item in enumerate(raw):
        where = f"monitors[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected a table with `name` and `schedule`")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(_KEYS))}")
        if "schedule" not in item:
            raise ConfigError(f"{where}.schedule: missing; a crontab such as '0 3 * * *' or an interval such as '1h'")
        spec = MonitorSpec.make(item.get("name", ""), item["schedule"], timezone=item.get("timezone", "UTC"),
                                margin=item.get("margin", 60.0), max_runtime=item.get("max_runtime", 1800.0),
                                description=item.get("description", ""), where=where)
        if any(other.name == spec.name for other in specs):
            raise ConfigError(f"{where}.name = {spec.name!r}: two monitors have this name")
        specs.append(spec)
    return tuple(specs)


def utc_iso(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC (seconds), or None."""
    if ts is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ts)).isoformat(timespec="seconds")
