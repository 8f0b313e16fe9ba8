"""`send_test` (behind `kansoku alerts test CHANNEL`), the log channel and the Apprise channel."""

from __future__ import annotations

import io
import json
from typing import Any

from kansoku import logs
from kansoku.alerts import send_test
from kansoku.settings import load_settings


def _settings(channels: list[dict[str, Any]]) -> Any:
    return load_settings(alerts={"channels": channels}, service_name="shop", environment="test")


def _apprise(url: str) -> Any:
    return _settings([{"name": "ap", "type": "apprise", "urls": [url]}])


def test_log_channel_reports_success() -> None:
    """The log channel writes the test notification as one log line."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="json"), stream=buffer)
    try:
        result = send_test("log", _settings([{"name": "log", "type": "log", "level": "info"}]))
    finally:
        logs.configure_logging(load_settings(log_format="json"))
    assert (result.ok, result.error, result.detail) == (True, None, "sent via log")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    [line] = [entry for entry in lines if entry.get("rule") == "kansoku_test"]
    assert (line["event"], line["level"], line["alert_title"], line["groups"]) == (
        "alert test", "info", "[LOW] kansoku_test: Test notification from kansoku", ["kansoku-test"])


def test_unreachable_webhook_gives_the_exact_error(port: int) -> None:
    """A refused connection comes back as the channel's error, without the URL."""
    result = send_test("ops", _settings([{"name": "ops", "type": "webhook",
                                          "url": f"http://127.0.0.1:{port}/hook?token=abc"}]))
    assert not result.ok
    assert result.error is not None and result.error.startswith("webhook: ConnectError:")
    assert "abc" not in result.error


def test_unknown_channel() -> None:
    """Naming a channel that does not exist says which ones do."""
    result = send_test("nope", _settings([{"name": "ops", "type": "log"}]))
    assert (result.ok, result.error) == (False, "no channel named 'nope'; configured: ops")


def test_pagerduty_test_triggers_and_resolves(receiver: Any) -> None:
    """A PagerDuty test opens and closes a test alert (same dedup key)."""
    receiver.default = (202, {"Content-Type": "application/json"}, b'{"status": "success", "dedup_key": "x"}')
    result = send_test("pd", _settings([{"name": "pd", "type": "pagerduty", "routing_key": "k",
                                         "url": receiver.url + "/v2/enqueue"}]))
    assert result.ok
    actions = [(r.json()["event_action"], r.json()["dedup_key"]) for r in receiver.requests]
    assert actions == [("trigger", "kansoku-test"), ("resolve", "kansoku-test")]


def test_apprise_url_to_a_local_server(receiver: Any) -> None:
    """The Apprise channel delivers through an Apprise URL (json:// to a local server)."""
    host, port = receiver.server.server_address[:2]
    result = send_test("ap", _apprise(f"json://{host}:{port}/ap"))
    assert result.ok, result.error
    [req] = receiver.requests
    body = req.json()
    assert (req.path, body["title"], body["type"]) == (
        "/ap", "[LOW] kansoku_test: Test notification from kansoku", "info")
    assert "The channel 'ap' works." in body["message"]


def test_apprise_failure_is_reported(receiver: Any) -> None:
    """An Apprise target answering 500 is a failed test with a reason."""
    receiver.default = (500, {}, b"no")
    host, port = receiver.server.server_address[:2]
    result = send_test("ap", _apprise(f"json://{host}:{port}/ap"))
    assert (result.ok, result.error) == (
        False, "apprise: no service accepted the notification (see Apprise's log)")
