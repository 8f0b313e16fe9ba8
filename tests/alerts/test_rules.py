"""Rules and channels: the chapter's defaults, the TOML format, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kansoku.alerts.rules import DEFAULT_RULES, AlertRule, load_alerting, parse_alerting
from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings


def test_defaults_are_the_chapter_rules_routed_to_log() -> None:
    """With nothing configured, the chapter's four rules apply and go to one log channel."""
    config = parse_alerting({})
    assert [(r.name, r.severity_threshold, r.categories, r.error_count_threshold, r.time_window_minutes,
             r.suppression_minutes) for r in config.rules] == [
        ("emergency_errors", "emergency", (), 1, 1, 5),
        ("critical_errors", "critical", (), 3, 5, 30),
        ("security_incidents", "medium", ("security",), 1, 1, 15),
        ("performance_degradation", "high", ("performance",), 10, 5, 120),
    ]
    assert list(config.channels) == ["log"]
    assert config.channels_of(config.rules[0]) == ["log"]
    assert config.rules == DEFAULT_RULES


def test_channels_without_rules_keep_default_rules_on_every_channel() -> None:
    """Channels configured but no rules: the default rules route to every channel."""
    config = parse_alerting({"channels": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/h"}]})
    assert config.rules == DEFAULT_RULES
    assert config.channels_of(config.rules[1]) == ["ops"]


def test_toml_file_with_env_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DESIGN.md file format loads through Settings, with ${VAR} secrets expanded."""
    path = tmp_path / "kansoku.toml"
    path.write_text('''
[[alerts.channels]]
name = "ops"
type = "webhook"
url = "https://hooks.example.com/kansoku"
secret = "${OPS_WEBHOOK_SECRET}"

[[alerts.rules]]
name = "critical_errors"
severity_threshold = "critical"
categories = []
error_count_threshold = 3
time_window_minutes = 5
suppression_minutes = 30
channels = ["ops"]
''')
    monkeypatch.setenv("KANSOKU_CONFIG", str(path))
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", "hush")
    config = load_alerting(load_settings())
    rule = config.rules[0]
    assert (rule.name, rule.severity_threshold, rule.error_count_threshold, rule.channels) == (
        "critical_errors", "critical", 3, ("ops",))
    channel = config.channels["ops"]
    assert channel.type == "webhook" and channel.secret is not None
    assert channel.secret.get_secret_value() == "hush"
    assert "hush" not in repr(config)


def test_python_rules_and_chapter_aliases() -> None:
    """Rules are built in Python too; the chapter's category_filter/suppression_time_minutes work."""
    rule = AlertRule.model_validate({"name": "db", "category_filter": ["database"],
                                     "suppression_time_minutes": 7, "severity_threshold": "HIGH"})
    assert (rule.categories, rule.suppression_minutes, rule.severity_threshold) == (("database",), 7, "high")
    assert rule.window_seconds == 300 and rule.suppression_seconds == 420


@pytest.mark.parametrize(("raw", "message"), [
    ({"rules": [{"name": "a", "error_count_threshold": 0}]}, "alerts.rules[0].error_count_threshold = 0"),
    ({"rules": [{"name": "a", "severity_threshold": "huge"}]}, "alerts.rules[0].severity_threshold = 'huge'"),
    ({"rules": [{"name": "a", "colour": "red"}]}, "alerts.rules[0].colour: unknown key"),
    ({"rules": [{"name": "a", "kind": "http_error_ratio"}]}, "needs `threshold`"),
    ({"rules": [{"name": "a", "kind": "http_error_ratio", "threshold": 5}]}, "fraction between 0 and 1"),
    ({"rules": [{"name": "a"}, {"name": "a"}]}, "alerts.rules[1].name = 'a': two rules"),
    ({"rules": [{"name": "a", "channels": ["nope"]}]}, "alerts.rules[0].channels: no channel named 'nope'"),
    ({"rules": {"name": "a"}}, "alerts.rules: expected a list of tables"),
    ({"channels": [{"name": "x", "type": "fax"}]}, "alerts.channels[0].type = 'fax'"),
    ({"channels": [{"name": "x", "type": "slack"}]},
     "alerts.channels[0]: Value error, set either `webhook_url`"),
    ({"channels": [{"name": "x", "type": "email", "host": "h"}]}, "alerts.channels[0].from_addr"),
    ({"channels": [{"name": "x", "type": "pagerduty"}]}, "alerts.channels[0].routing_key"),
    ({"channels": [{"name": "x", "type": "webhook", "url": "http://h", "timeout": -1}]},
     "alerts.channels[0].timeout = -1"),
    ({"channels": [{"name": "x", "type": "log"}, {"name": "x", "type": "log"}]},
     "two channels have this name"),
    ({"group_wait_seconds": "soon"}, "alerts.group_wait_seconds = 'soon'"),
    ({"rulez": []}, "alerts.rulez: unknown key"),
])
def test_bad_input_names_the_key(raw: dict[str, Any], message: str) -> None:
    """Every invalid entry raises ConfigError naming the key (and the value unless secret)."""
    with pytest.raises(ConfigError) as info:
        parse_alerting(raw)
    assert message in str(info.value)


def test_secret_values_are_not_echoed_in_errors() -> None:
    """A bad secret-bearing value is shown as *** in the error."""
    with pytest.raises(ConfigError) as info:
        parse_alerting({"channels": [{"name": "x", "type": "pagerduty", "routing_key": ["s3cr3t-key"]}]})
    assert "s3cr3t-key" not in str(info.value) and "routing_key = ***" in str(info.value)
