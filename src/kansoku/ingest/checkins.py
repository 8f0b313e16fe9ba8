"""Sentry Crons' `check_in` envelope items as kansoku monitor check-ins.

A check-in (https://develop.sentry.dev/sdk/telemetry/check-ins/) names its monitor by
`monitor_slug`, has a `check_in_id` (32 hex digits; a closing check-in repeats the opening one's),
a `status` (`in_progress`, `ok`, `error`) and, when finished, a `duration` in seconds. With a
`monitor_config` it also defines the monitor, created when unknown and updated when known (an
upsert, as Sentry does): `schedule` `{"type": "crontab", "value": "0 3 * * *"}` or `{"type":
"interval", "value": 2, "unit": "hour"}`, `timezone`, and `checkin_margin` and `max_runtime` in
minutes. A check-in of a monitor defined nowhere is counted and dropped. The monitor is then
evaluated like a native one: a missed, failed or over-runtime run alerts once, the next good run
recovers. Monitor names are the slugs, shared by every project of the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine

from kansoku._safety import report_internal_error
from kansoku.exceptions import ConfigError
from kansoku.ingest.body import IngestError
from kansoku.monitors.schedule import MonitorSpec
from kansoku.store import monitors as stored

__all__ = ["CheckIn", "checkin_from_sentry", "record_checkins", "spec_from_config"]

_UNIT_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800,
                        "month": 30 * 86_400, "year": 365 * 86_400}
_HEX_ID: Final = re.compile(r"[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class CheckIn:
    """One check-in to record: the monitor's slug, status, id, duration and (when sent) definition."""

    slug: str
    status: str
    checkin_id: str | None
    duration: float | None
    spec: MonitorSpec | None


def _minutes(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IngestError(400, f"check-in monitor_config.{name} = {value!r}: expected a number of minutes")
    return max(float(value) * 60.0, 1.0)  # 0 minutes: the smallest margin kansoku has, a second


def _schedule(schedule: Any) -> str | float:
    if not isinstance(schedule, Mapping):
        raise IngestError(400, "check-in monitor_config.schedule must be an object with type and value")
    kind, value = schedule.get("type"), schedule.get("value")
    if kind == "crontab" and isinstance(value, str):
        return value
    if kind == "interval":
        unit = _UNIT_SECONDS.get(str(schedule.get("unit", "")))
        if unit is None or isinstance(value, bool) or not isinstance(value, int | float):
            raise IngestError(400, f"check-in interval schedule {dict(schedule)!r}: expected a number value and a "
                              f"unit of {', '.join(_UNIT_SECONDS)}")
        return float(value) * unit
    raise IngestError(400, f"check-in schedule type {kind!r}: expected crontab (with a value string) or interval")


def spec_from_config(slug: str, config: Any) -> MonitorSpec:
    """The monitor a Sentry `monitor_config` defines; IngestError 400 naming what is wrong."""
    if not isinstance(config, Mapping):
        raise IngestError(400, "check-in monitor_config must be an object")
    try:
        return MonitorSpec.make(slug, _schedule(config.get("schedule")), timezone=str(config.get("timezone") or "UTC"),
                                margin=_minutes(config, "checkin_margin", 60.0),
                                max_runtime=_minutes(config, "max_runtime", 1800.0), where="monitor_config")
    except ConfigError as exc:
        raise IngestError(400, f"check-in of {slug!r}: {exc}") from None


def checkin_from_sentry(payload: Mapping[str, Any]) -> CheckIn:
    """The check-in of a `check_in` item's payload; IngestError 400 naming what is wrong."""
    slug, status = payload.get("monitor_slug"), payload.get("status")
    if not isinstance(slug, str) or not slug:
        raise IngestError(400, "a check-in needs its monitor_slug")
    if status not in stored.STATUSES:
        raise IngestError(400, f"check-in status {status!r}: expected one of {', '.join(stored.STATUSES)}")
    raw_id = payload.get("check_in_id")
    checkin_id = str(raw_id).replace("-", "").lower() if raw_id else None
    if checkin_id is not None and not _HEX_ID.match(checkin_id):
        raise IngestError(400, f"check_in_id {str(raw_id)[:40]!r}: expected a UUID (32 hex digits)")
    duration = payload.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0):
        raise IngestError(400, f"check-in duration {duration!r}: expected seconds, 0 or more")
    config = payload.get("monitor_config")
    spec = None if config is None else spec_from_config(slug, config)
    return CheckIn(slug, str(status), checkin_id, None if duration is None else float(duration), spec)


def record_checkins(engine: Engine, checkins: Sequence[CheckIn], now: float) -> int:
    """Write the check-ins to the store (a blocking call: run it off the event loop); how many were of a
    monitor defined nowhere, and dropped. IngestError 503 when the store fails."""
    unknown = 0
    for item in checkins:
        try:
            stored.checkin(engine, item.slug, item.status, now=now, spec=item.spec, checkin_id=item.checkin_id,
                           duration=item.duration, source="sentry")
        except stored.UnknownMonitor:
            unknown += 1
        except Exception as exc:
            report_internal_error("ingest.checkins", exc)
            raise IngestError(503, "the store could not record the check-in: retry later",
                              {"Retry-After": "5"}) from None
    return unknown
