"""`kansoku config check` through the installed script: masked settings, clear errors, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Kansoku = Callable[..., Any]  # the `kansoku` fixture of conftest.py

SECRET_TOML = """
dashboard_token = "tok-in-the-file-123"
environment = "staging"

[[alerts.channels]]
name = "ops"
type = "webhook"
url = "https://hooks.example.com/kansoku"
secret = "${OPS_SECRET}"

[[alerts.rules]]
name = "everything"
channels = ["ops"]
"""


def test_config_check_prints_effective_settings_with_secrets_masked(kansoku: Kansoku, tmp_path: Path) -> None:
    """Every setting is printed; secrets from the file, references and the environment show as ***."""
    (tmp_path / "kansoku.toml").write_text(SECRET_TOML)
    result = kansoku("config", "check", env={"OPS_SECRET": "whsec-very-secret", "KANSOKU_SENTRY_DSN":
                                             "https://key123@sentry.example.com/1"})
    assert result.code == 0, result.stderr
    assert "valid" in result.stdout
    assert "environment" in result.stdout and "staging" in result.stdout
    for secret in ("tok-in-the-file-123", "whsec-very-secret", "key123"):
        assert secret not in result.stdout
    lines = {line[2:].split("=")[0].strip(): line for line in result.stdout.splitlines() if "=" in line}
    assert lines["dashboard_token"].startswith("*") and lines["dashboard_token"].endswith("= ***")
    assert lines["sentry_dsn"].endswith("= ***")
    assert "alert channels: ops" in result.stdout


def test_config_check_json_is_machine_readable(kansoku: Kansoku, tmp_path: Path) -> None:
    """--json prints one JSON document: validity, file, settings (masked), rules and channels."""
    (tmp_path / "kansoku.toml").write_text(SECRET_TOML)
    result = kansoku("config", "check", "--json", env={"OPS_SECRET": "whsec-very-secret"})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["config_file"] == "kansoku.toml"
    assert data["settings"]["dashboard_token"] == "***"
    assert data["settings"]["environment"] == "staging"
    assert data["alert_rules"] == ["everything"]
    assert data["alert_channels"] == ["ops"]
    assert "whsec-very-secret" not in result.stdout


def test_database_password_is_masked(kansoku: Kansoku) -> None:
    """A password inside KANSOKU_DATABASE_URL is not printed."""
    url = "postgresql+psycopg://kansoku:pg-pass-42@db.example.com/kansoku"
    result = kansoku("config", "check", "--json", env={"KANSOKU_DATABASE_URL": url})
    assert result.code == 0, result.stderr
    assert "pg-pass-42" not in result.stdout
    assert json.loads(result.stdout)["settings"]["database_url"] == (
        "postgresql+psycopg://kansoku:***@db.example.com/kansoku")


def test_bad_environment_value_exits_3_naming_variable_and_allowed_values(kansoku: Kansoku) -> None:
    """KANSOKU_LOG_LEVEL=verbose: exit 3, the variable, the value and the allowed levels on stderr."""
    result = kansoku("config", "check", env={"KANSOKU_LOG_LEVEL": "verbose"})
    assert result.code == 3
    assert "KANSOKU_LOG_LEVEL" in result.stderr
    assert "VERBOSE" in result.stderr
    assert "'DEBUG'" in result.stderr
    assert "kansoku config check" in result.stderr  # what to do next
    assert result.stdout == ""


def test_invalid_toml_exits_3_naming_the_file(kansoku: Kansoku, tmp_path: Path) -> None:
    """A syntax error in kansoku.toml: exit 3 and the file's name."""
    (tmp_path / "kansoku.toml").write_text("log_level = \n")
    result = kansoku("config", "check")
    assert result.code == 3
    assert "kansoku.toml" in result.stderr
    assert "not valid TOML" in result.stderr


def test_missing_variable_reference_exits_3_naming_it(kansoku: Kansoku, tmp_path: Path) -> None:
    """`${OPS_SECRET}` with OPS_SECRET unset: exit 3 naming the variable and the key."""
    (tmp_path / "kansoku.toml").write_text(SECRET_TOML)
    result = kansoku("config", "check")
    assert result.code == 3
    assert "OPS_SECRET" in result.stderr
    assert "alerts.channels[0].secret" in result.stderr


def test_unknown_setting_exits_3(kansoku: Kansoku, tmp_path: Path) -> None:
    """A misspelt key in the file is an error, not silently ignored."""
    (tmp_path / "kansoku.toml").write_text('log_levl = "DEBUG"\n')
    result = kansoku("config", "check")
    assert result.code == 3
    assert "log_levl" in result.stderr


def test_invalid_alert_rule_exits_3_naming_the_key(kansoku: Kansoku, tmp_path: Path) -> None:
    """An alert rule routed to a channel that does not exist: exit 3 naming alerts.rules[0].channels."""
    (tmp_path / "kansoku.toml").write_text('[[alerts.rules]]\nname = "x"\nchannels = ["nowhere"]\n')
    result = kansoku("config", "check")
    assert result.code == 3
    assert "alerts.rules[0].channels" in result.stderr
    assert "nowhere" in result.stderr


def test_bad_monitor_crontab_or_timezone_exits_3_naming_the_key(kansoku: Kansoku, tmp_path: Path) -> None:
    """A [[monitors]] table with a bad crontab, then a bad timezone: exit 3 naming the key and what to write."""
    (tmp_path / "kansoku.toml").write_text('[[monitors]]\nname = "backup"\nschedule = "0 25 * * *"\n')
    result = kansoku("config", "check")
    assert result.code == 3
    assert "monitors[0].schedule = '0 25 * * *': not a valid crontab" in result.stderr
    (tmp_path / "kansoku.toml").write_text('[[monitors]]\nname = "backup"\nschedule = "1h"\ntimezone = "Mars/Base"\n')
    result = kansoku("config", "check")
    assert result.code == 3
    assert "monitors[0].timezone = 'Mars/Base': unknown timezone" in result.stderr


def test_config_option_points_at_another_file(kansoku: Kansoku, tmp_path: Path) -> None:
    """`kansoku --config FILE` reads that file."""
    (tmp_path / "prod.toml").write_text('environment = "production"\n')
    result = kansoku("--config", "prod.toml", "config", "check", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["settings"]["environment"] == "production"


def test_config_option_with_missing_file_is_a_usage_error(kansoku: Kansoku) -> None:
    """`--config nope.toml`: exit 2 saying the file does not exist."""
    result = kansoku("--config", "nope.toml", "config", "check")
    assert result.code == 2
    assert "nope.toml" in result.stderr
    assert "does not exist" in result.stderr


def test_kansoku_config_env_pointing_nowhere_exits_3(kansoku: Kansoku) -> None:
    """KANSOKU_CONFIG naming a missing file: exit 3 with how to fix it."""
    result = kansoku("config", "check", env={"KANSOKU_CONFIG": "missing.toml"})
    assert result.code == 3
    assert "missing.toml" in result.stderr
    assert "unset it" in result.stderr


def test_invalid_error_rule_exits_3_naming_it(kansoku: Kansoku, tmp_path: Path) -> None:
    """A severity rule with an unknown severity: exit 3 naming errors.severity_rules[0]."""
    (tmp_path / "kansoku.toml").write_text('[[errors.severity_rules]]\nseverity = "apocalyptic"\nkeywords = ["x"]\n')
    result = kansoku("config", "check")
    assert result.code == 3
    assert "errors.severity_rules[0]" in result.stderr
    assert "apocalyptic" in result.stderr
