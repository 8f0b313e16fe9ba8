"""`kansoku demo`'s settings: its choices yield to the user's, its alerts add to the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kansoku.alerts import parse_alerting
from kansoku.demo.runner import demo_alerts, demo_settings
from kansoku.errors import Classifier
from kansoku.settings import load_settings


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No KANSOKU_* variable and no kansoku.toml: only what a test sets. monkeypatch: the environment
    is process state that settings read, and it must be restored."""
    for name in list(os.environ):
        if name.startswith(("KANSOKU_", "OTEL_", "PROMETHEUS_MULTIPROC_DIR")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_demo_choices_apply_when_the_user_chose_nothing(clean_environment: Path) -> None:
    """Service name, log directory, trace level, error rules are the demo's by default, and valid."""
    chosen = demo_settings({}, "127.0.0.1")
    assert chosen["service_name"] == "kansoku-demo"
    assert str(chosen["log_dir"]) == ".kansoku/logs"
    assert chosen["trace_level"] == "DETAILED"
    assert "dashboard_token" not in chosen  # loopback: no token needed
    settings = load_settings(**chosen)  # every choice is a valid setting
    parse_alerting(settings.alerts)
    Classifier.from_config(settings.errors)


def test_user_settings_win(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service name from the environment and a database URL option are kept as given."""
    monkeypatch.setenv("KANSOKU_SERVICE_NAME", "my-shop")
    chosen = demo_settings({"database_url": "sqlite:///elsewhere.db"}, "127.0.0.1")
    assert "service_name" not in chosen
    assert chosen["database_url"] == "sqlite:///elsewhere.db"


def test_a_token_is_made_for_a_non_loopback_address(clean_environment: Path) -> None:
    """--host 0.0.0.0 without KANSOKU_DASHBOARD_TOKEN: the demo makes one, never an open dashboard."""
    chosen = demo_settings({}, "0.0.0.0")
    assert len(chosen["dashboard_token"]) >= 20
    assert demo_settings({}, "0.0.0.0")["dashboard_token"] != chosen["dashboard_token"]


def test_demo_alerts_add_the_log_channel_and_rules_to_the_users() -> None:
    """The user's e-mail channel and rule stay; the demo adds `log` and its rules, routed to all."""
    configured = {"channels": [{"name": "mail", "type": "email", "host": "smtp.example.com",
                                "from": "a@example.com", "to": ["b@example.com"]}],
                  "rules": [{"name": "mine", "severity_threshold": "high"}]}
    merged = parse_alerting(demo_alerts(configured))
    assert list(merged.channels) == ["log", "mail"]
    names = [rule.name for rule in merged.rules]
    assert names[-1] == "mine" and {"demo_new_error", "demo_payment_failures"} <= set(names)
    demo_rule = next(rule for rule in merged.rules if rule.name == "demo_payment_failures")
    assert merged.channels_of(demo_rule) == ["log", "mail"]
    assert merged.group_wait_seconds == 2.0
