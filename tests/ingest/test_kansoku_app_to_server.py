"""A kansoku-instrumented app reports to a kansoku server by configuration only (its DSN)."""

from __future__ import annotations

from kansoku.errors import ErrorTracker
from kansoku.settings import load_settings
from kansoku.store import queries

from .conftest import Running, wait_for


def reserve(quantity: int) -> None:
    """Fail like an app's code."""
    raise LookupError(f"only {quantity - 1} left")


def test_kansoku_errors_forwarded_with_the_project_dsn_are_grouped_by_the_server(running: Running) -> None:
    """KANSOKU_SENTRY_DSN set to a project's DSN: the app's events are grouped on the server, frames kept."""
    tracker = ErrorTracker(load_settings(sentry_dsn=running.config["dsn"], service_name="legacy-app",
                                         environment="prod", strict=True), None)
    tracker.start()
    for quantity in (3, 4, 5):
        try:
            reserve(quantity)
        except LookupError as exc:
            tracker.capture(exc)
    assert tracker.close(10)
    group = wait_for(lambda: [g for g in queries.list_groups(running.engine, status=None)["items"]
                              if g["count"] == 3], what="a group of 3")[0]
    assert (group["exception_type"], group["environment"], group["project"]) == ("LookupError", "prod", "shop")
    # kansoku's forwarder sends its own group key as the fingerprint: the server groups as the app does
    assert group["fingerprint_parts"][0] == "custom:kansoku" and len(group["fingerprint_parts"]) == 2
    event = queries.get_group(running.engine, group["id"], events=1)["events"][0]  # type: ignore[index]
    frame = event["exceptions"][-1]["frames"][-1]
    assert (frame["function"], frame["in_app"]) == ("reserve", True)
