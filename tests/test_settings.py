"""Settings: precedence, ${VAR} expansion, clear errors, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kansoku.toml"
    monkeypatch.setenv("KANSOKU_CONFIG", str(path))
    return path


def test_defaults_without_file_or_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With nothing configured, the documented defaults apply."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.environment == "development"
    assert settings.log_level == "INFO"
    assert settings.database_url == "sqlite:///.kansoku/kansoku.db"
    assert settings.trace_level == "PERFORMANCE"
    assert settings.dashboard_token is None


def test_keywords_beat_environment_beat_file(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keywords > KANSOKU_* environment > kansoku.toml > defaults, field by field."""
    toml.write_text('environment = "from-file"\nversion = "1.0"\nlog_level = "debug"\n')
    monkeypatch.setenv("KANSOKU_ENVIRONMENT", "from-env")
    monkeypatch.setenv("KANSOKU_VERSION", "2.0")
    settings = load_settings(version="3.0")
    assert (settings.environment, settings.version, settings.log_level) == ("from-env", "3.0", "DEBUG")


def test_default_file_is_read_from_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """./kansoku.toml is used when KANSOKU_CONFIG is not set."""
    monkeypatch.delenv("KANSOKU_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kansoku.toml").write_text('service_name = "shop"\n')
    assert load_settings().service == "shop"


def test_standard_otel_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME and the sampler argument feed the settings."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    settings = load_settings()
    assert (settings.otlp_endpoint, settings.service, settings.trace_sample_rate) == (
        "http://127.0.0.1:4318", "billing", 0.25)


def test_kansoku_variable_wins_over_otel_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """KANSOKU_OTLP_ENDPOINT is preferred to OTEL_EXPORTER_OTLP_ENDPOINT when both are set."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
    monkeypatch.setenv("KANSOKU_OTLP_ENDPOINT", "http://kansoku:4318")
    assert load_settings().otlp_endpoint == "http://kansoku:4318"


def test_variable_references_in_the_file_are_expanded(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """${VAR} in any string of the file, nested ones included, takes the variable's value."""
    toml.write_text('[[alerts.channels]]\nname = "ops"\ntype = "webhook"\nsecret = "${OPS_SECRET}"\n')
    monkeypatch.setenv("OPS_SECRET", "s3cr3t")
    assert load_settings().alerts["channels"][0]["secret"] == "s3cr3t"


def test_missing_reference_is_an_error_naming_it(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ${VAR} that is not set fails with the variable's name and the key that uses it."""
    toml.write_text('[[alerts.channels]]\nname = "ops"\nsecret = "${NOT_SET_ANYWHERE}"\n')
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"alerts\.channels\[0\]\.secret.*NOT_SET_ANYWHERE"):
        load_settings()


def test_bad_environment_value_names_variable_value_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid enum value names the variable, the value and what is allowed."""
    monkeypatch.setenv("KANSOKU_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "KANSOKU_LOG_LEVEL" in message and "'LOUD'" in message and "'WARNING'" in message


def test_out_of_range_alias_is_reported_under_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value given through an alias variable is reported with the field's own variable name."""
    monkeypatch.setenv("KANSOKU_TRACE_SAMPLE_RATE", "2")
    with pytest.raises(ConfigError, match=r"trace_sample_rate \(environment KANSOKU_TRACE_SAMPLE_RATE"):
        load_settings()


def test_unknown_key_in_file_is_an_error(toml: Path) -> None:
    """A misspelt key in kansoku.toml is refused, not ignored."""
    toml.write_text('log_levle = "debug"\n')
    with pytest.raises(ConfigError, match="unknown setting 'log_levle'"):
        load_settings()


def test_broken_toml_is_reported_with_the_path(toml: Path) -> None:
    """A syntax error in the file names the file."""
    toml.write_text("environment = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """KANSOKU_CONFIG pointing nowhere is an error that says how to fix it."""
    monkeypatch.setenv("KANSOKU_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_secret_value_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors about a secret field never print its value."""
    with pytest.raises(ConfigError) as info:
        load_settings(dashboard_token=["not", "a", "string"])
    assert "not" not in str(info.value).split("=", 1)[1]


def test_masked_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """masked() replaces secret settings and secret-looking channel fields with ***."""
    settings = load_settings(
        dashboard_token="tok-123", sentry_dsn="https://k@sentry.example/1",
        alerts={"channels": [{"name": "ops", "type": "slack", "webhook_token": "xoxb-1", "url": "https://x"}]},
    )
    masked = settings.masked()
    assert masked["dashboard_token"] == "***"
    assert masked["sentry_dsn"] == "***"
    assert masked["alerts"]["channels"][0]["webhook_token"] == "***"
    assert "tok-123" not in repr(masked) and "xoxb-1" not in repr(masked)


def test_settings_are_frozen() -> None:
    """A Settings object cannot be changed after it is built."""
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.environment = "x"  # type: ignore[misc]


def test_masked_hides_passwords_in_urls_and_webhook_paths() -> None:
    """The store password and webhook URLs (secrets in their path) never show in masked()."""
    settings = load_settings(
        database_url="postgresql+psycopg://app:pg-secret@db.internal:5432/kansoku",
        alerts={"channels": [{"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XyZ"}]},
    )
    masked = settings.masked()
    assert masked["database_url"] == "postgresql+psycopg://app:***@db.internal:5432/kansoku"
    assert masked["alerts"]["channels"][0]["url"] == "https://hooks.slack.com/***"
