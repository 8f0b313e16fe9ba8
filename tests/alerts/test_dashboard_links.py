"""Links in notifications: `dashboard_url` is the dashboard's URL; a bare host means route_prefix on it."""

from __future__ import annotations

import pytest

from kansoku.alerts.render import monitor_item
from kansoku.alerts.rules import AlertRule, load_alerting
from kansoku.settings import load_settings


@pytest.mark.parametrize(("dashboard_url", "prefix", "expected"), [
    ("https://ops.example.com", "/kansoku", "https://ops.example.com/kansoku/errors/7"),
    ("https://ops.example.com/", "/kansoku", "https://ops.example.com/kansoku/errors/7"),
    ("https://ops.example.com/kansoku", "/kansoku", "https://ops.example.com/kansoku/errors/7"),
    ("https://ops.example.com/kansoku/", "/kansoku", "https://ops.example.com/kansoku/errors/7"),
    ("https://example.com/tools/obs", "/kansoku", "https://example.com/tools/obs/errors/7"),
    ("https://ops.example.com", "/obs", "https://ops.example.com/obs/errors/7"),
])
def test_group_links_follow_the_dashboards_url(dashboard_url: str, prefix: str, expected: str) -> None:
    """The dashboard's base as given (never /kansoku/kansoku/...); a bare host gets the route prefix."""
    site = load_alerting(load_settings(dashboard_url=dashboard_url, route_prefix=prefix)).site
    assert site.group_url(7) == expected
    assert site.dashboard_base() == expected.removesuffix("/errors/7")


def test_no_dashboard_url_no_links() -> None:
    """Without a public dashboard URL notifications carry no link."""
    site = load_alerting(load_settings()).site
    assert (site.group_url(7), site.dashboard_base()) == (None, None)


@pytest.mark.parametrize("dashboard_url", ["https://ops.example.com", "https://ops.example.com/kansoku/"])
def test_monitor_links_follow_the_dashboards_url(dashboard_url: str) -> None:
    """A missed run's link is the monitor's page under the dashboard's base, never /kansoku/kansoku/..."""
    site = load_alerting(load_settings(dashboard_url=dashboard_url)).site
    monitor = {"name": "backup", "schedule": "60", "schedule_kind": "interval", "timezone": "UTC",
               "max_runtime_seconds": 30.0}
    item = monitor_item(AlertRule(name="monitors"), "missed", monitor, None, now=0.0, site=site)
    assert item["url"] == "https://ops.example.com/kansoku/monitors/backup"
