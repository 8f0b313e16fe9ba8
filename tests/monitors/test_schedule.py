"""Monitor definitions: crontabs in a timezone, intervals, durations, and clear errors for bad input."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kansoku.exceptions import ConfigError
from kansoku.monitors import MonitorSpec, parse_monitors
from kansoku.monitors.schedule import parse_duration

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(*parts, tzinfo=tz).timestamp()


def test_crontab_is_read_in_the_monitors_timezone_across_daylight_saving() -> None:
    """`0 3 * * *` in Europe/Berlin is 03:00 Berlin time, before and after the clocks change."""
    spec = MonitorSpec.make("nightly", "0 3 * * *", timezone="Europe/Berlin")
    assert spec.next_run(at(2026, 10, 24, 12, 0)) == at(2026, 10, 25, 3, 0)  # the night the clocks go back
    assert spec.next_run(at(2026, 10, 25, 3, 0)) == at(2026, 10, 26, 3, 0)
    assert spec.next_run(at(2026, 10, 24, 3, 0)) - at(2026, 10, 24, 3, 0) == 25 * 3600  # a 25-hour day


def test_interval_and_durations() -> None:
    """Intervals and durations read as 90, '90s', '10m', '1h', '2d'."""
    spec = MonitorSpec.make("sync", "15m", margin="30s", max_runtime="1h")
    assert (spec.schedule_kind, spec.next_run(1000.0), spec.margin, spec.max_runtime) == ("interval", 1900.0, 30.0,
                                                                                          3600.0)
    assert [parse_duration(v, "x") for v in (90, "90s", "10m", "1h", "2d", "1.5h")] == [
        90.0, 90.0, 600.0, 3600.0, 172800.0, 5400.0]
    assert spec.describe() == "every 900s"
    assert MonitorSpec.make("n", "0  3 * *  *").describe() == "0 3 * * * (UTC)"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"schedule": "61 * * * *"}, "schedule = '61 * * * *': not a valid crontab; write five fields"),
    ({"schedule": "0 3 * * * *"}, "not a valid crontab"),
    ({"schedule": "sometimes"}, "expected a crontab such as '0 3 * * *' or an interval such as '10m'"),
    ({"schedule": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone = 'Mars/Olympus': unknown timezone"),
    ({"schedule": "1h", "margin": "-5m"}, "margin = '-5m': expected a duration"),
    ({"schedule": "1h", "max_runtime": 0}, "max_runtime = 0: a duration must be more than 0 seconds"),
])
def test_bad_definitions_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    """A bad crontab, interval, timezone or duration is a ConfigError naming the field and what to write."""
    with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")):
        MonitorSpec.make("job", **kwargs)  # type: ignore[arg-type]


def test_config_tables() -> None:
    """[[monitors]] tables parse; an unknown key, a missing schedule and a duplicate name are named."""
    (spec,) = parse_monitors([{"name": "backup", "schedule": "0 2 * * *", "timezone": "UTC", "margin": "5m"}])
    assert (spec.name, spec.schedule, spec.margin) == ("backup", "0 2 * * *", 300.0)
    with pytest.raises(ConfigError, match=r"monitors\[0\].every: unknown key"):
        parse_monitors([{"name": "a", "every": "1h"}])
    with pytest.raises(ConfigError, match=r"monitors\[0\].schedule: missing"):
        parse_monitors([{"name": "a"}])
    with pytest.raises(ConfigError, match=r"monitors\[1\].name = 'a': two monitors have this name"):
        parse_monitors([{"name": "a", "schedule": "1h"}, {"name": "a", "schedule": "2h"}])
    with pytest.raises(ConfigError, match=r"monitors\[0\].name = 'a b'"):
        parse_monitors([{"name": "a b", "schedule": "1h"}])
