"""One frozen `Settings`, the only code in kansoku that reads the environment.

Precedence, highest first: keywords to `instrument()` (or `load_settings(**overrides)`), the
`KANSOKU_*` environment (and the standard `OTEL_*` variables where they apply), the TOML file
named by `KANSOKU_CONFIG` (default `./kansoku.toml` when present), then the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from kansoku.exceptions import ConfigError

__all__ = ["LOG_LEVELS", "TRACE_LEVELS", "Settings", "load_settings"]

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_STORE_SCHEMES = frozenset({"sqlite", "postgresql", "postgres"})
TRACE_LEVELS = ("DISABLED", "ERROR_ONLY", "PERFORMANCE", "DETAILED", "VERBOSE")
ENV_PREFIX = "KANSOKU_"
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TraceLevel = Literal["DISABLED", "ERROR_ONLY", "PERFORMANCE", "DETAILED", "VERBOSE"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _env(name: str, *aliases: str) -> Any:
    """Environment names for a field: KANSOKU_<NAME> first, then the standard aliases."""
    return AliasChoices(ENV_PREFIX + name.upper(), *aliases)


class Settings(BaseSettings):
    """Everything kansoku can be configured with. Frozen: build a new one to change it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
        env_parse_none_str="",
    )

    # identity
    service_name: str | None = Field(
        None, validation_alias=_env("service_name", "OTEL_SERVICE_NAME"),
        description="Service name in every log line, metric target, span and event "
        "(default: the app's title, else 'kansoku-app').",
    )
    environment: str = Field("development", description="Deployment environment.")
    version: str | None = Field(None, description="Release of the service (also the error release).")

    # logging
    log_level: LogLevel = Field("INFO", description="Lowest level written.")
    log_format: Literal["json", "console", "auto"] = Field(
        "auto", description="auto: console on a terminal, JSON otherwise."
    )
    log_dir: Path | None = Field(None, description="Directory for the rotated log files; unset: stdout only.")
    log_retention_days: int = Field(30, ge=1, description="Daily application log files kept.")
    error_log_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Size of one error log file.")
    error_log_backups: int = Field(5, ge=1, description="Rotated error log files kept.")
    log_rotate_when: str = Field("midnight", description="TimedRotatingFileHandler `when` for the application log.")
    slow_threshold_ms: float = Field(
        1000.0, gt=0, description="performance() and timed calls above this log WARNING."
    )
    stdlib_logging: bool = Field(True, description="Route the standard library's logging through kansoku.")
    redact_keys: tuple[str, ...] = Field((), description="Extra field names whose values are always redacted.")
    redact_allow_keys: tuple[str, ...] = Field(
        (), description="Field names whose values are never masked nor taken for PII numbers "
        "(provider tokens inside them are still removed).",
    )
    allow_pii: bool = Field(False, description="Keep e-mail addresses in logs and events.")
    max_string_length: int = Field(4096, ge=64, description="Longer strings are truncated with a marker.")
    store_logs: bool = Field(
        True, description="Keep log lines in the store (the dashboard's logs page, `kansoku logs search`).")
    log_store_level: LogLevel = Field("INFO", description="Lowest level of the lines the store keeps.")
    log_store_levels: dict[str, LogLevel] = Field(
        default_factory=dict, description="Store levels per logger (name prefix: the longest match wins), "
        'e.g. {"sqlalchemy": "WARNING"}.')
    log_store_rate: float = Field(
        1000.0, ge=0.0, description="Lines at INFO and below each process keeps in the store per second; "
        "WARNING and up are always kept; 0: no limit.")
    propagate_context_to_threads: bool = Field(
        True, description="Threads and executors started inside a request inherit its context."
    )

    # HTTP
    route_prefix: str = Field("/kansoku", description="Prefix of the dashboard and the JSON API.")
    request_id_header: str = Field("X-Request-ID", description="Header that carries the request id.")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="Addresses or networks whose X-Forwarded-For is believed."
    )
    access_log: bool = Field(True, description="One access-log line per request.")
    access_log_exclude: tuple[str, ...] = Field(
        ("/metrics", "/health", "/ready"), description="Paths with no access-log line."
    )
    observe_exclude: tuple[str, ...] = Field(
        ("/metrics", "/health", "/ready", "{route_prefix}", "{route_prefix}/*"),
        description="Paths kept out of traces, RED metrics and stored logs (exact, or prefixes ending in *; "
        "{route_prefix} is the dashboard's): by default kansoku's own routes; [] observes everything.",
    )
    latency_buckets: tuple[float, ...] = Field(DEFAULT_BUCKETS, description="Request duration buckets (s).")
    metrics_token: SecretStr | None = Field(None, description="Bearer token required on /metrics.")
    metrics_allow: tuple[str, ...] = Field((), description="Networks allowed to scrape /metrics; empty: all.")
    multiprocess_dir: Path | None = Field(
        None, validation_alias=_env("multiprocess_dir", "PROMETHEUS_MULTIPROC_DIR"),
        description="prometheus_client multiprocess directory (set by `kansoku run --workers`).",
    )
    capture_http_5xx: bool = Field(False, description="Also record raised 5xx HTTPExceptions as errors.")

    # background workers (Celery, RQ, any loop)
    worker_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the `/metrics` a worker serves (`kansoku.serve_metrics`, "
        "the Celery integration); unset: none.",
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address the worker's `/metrics` listens on.")

    # frameworks: Django, Flask, Litestar and any WSGI app
    capture_5xx_responses: bool = Field(
        True, description="Record a 5xx response answered without an exception (a framework's error page, "
        "a failed upstream) as an error event, grouped by method, route and status.",
    )

    # store
    database_url: str = Field("sqlite:///.kansoku/kansoku.db", description="SQLAlchemy URL of the store.")
    retention_days: int = Field(30, ge=1, description="Events and spans older than this are deleted.")
    max_events_per_group: int = Field(100, ge=1, description="Stored events kept per error group.")
    queue_size: int = Field(10_000, ge=10, description="Bound of each background queue.")

    # dashboard
    dashboard_token: SecretStr | None = Field(None, description="Dashboard and API token (unset: loopback only).")
    dashboard_url: str | None = Field(
        None, description="The dashboard's public URL, for links in alerts (`https://ops.example.com/kansoku`; "
        "a bare host means the dashboard at `route_prefix` on it).")
    dashboard: bool = Field(True, description="Mount the dashboard and the API under route_prefix.")

    # tracing and debugging
    trace_level: TraceLevel = Field(
        "PERFORMANCE", description="Depth of `traced` and the middleware; a ceiling on `traced(level=...)`.")
    trace_sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, validation_alias=_env("trace_sample_rate", "OTEL_TRACES_SAMPLER_ARG"),
        description="Share of new traces sampled (parent-based).",
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias=_env("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP endpoint; unset: spans go to the local store.",
    )
    otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf", validation_alias=_env("otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        description="OTLP transport.",
    )
    trace_console: bool = Field(False, description="Also print spans to the console (development).")
    store_spans: bool = Field(True, description="Keep spans in the store when no OTLP endpoint is set.")
    max_stored_spans: int = Field(200_000, ge=100, description="Spans kept in the store.")
    trace_store_rate: float = Field(
        50.0, ge=0.0,
        description="Traces per second each process keeps in the store (no OTLP endpoint); failed traces "
        "and those slower than slow_threshold_ms are always kept; 0: no limit.",
    )
    snapshot_dir: Path | None = Field(None, description="Also write error snapshots as JSON files here.")
    snapshot_keep: int = Field(100, ge=1, description="Snapshot files kept in snapshot_dir (oldest deleted).")
    instrument_httpx: bool = Field(False, description="Trace outgoing httpx calls.")
    instrument_requests: bool = Field(False, description="Trace outgoing requests calls.")
    instrument_sqlalchemy: bool = Field(
        False, description="Trace the queries of every SQLAlchemy engine, those made earlier included "
        "(kansoku's own store never; one engine: kansoku.instrument_engine).")

    # OpenTelemetry's standard variables (interop): read here like every other setting, meant as
    # the SDK documents them (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/)
    sdk_disabled: bool = Field(
        False, validation_alias=_env("sdk_disabled", "OTEL_SDK_DISABLED"),
        description="No spans, no OTLP export of any signal (the app, logs and /metrics go on).",
    )
    traces_sampler: Literal["always_on", "always_off", "traceidratio", "parentbased_always_on",
                            "parentbased_always_off", "parentbased_traceidratio"] = Field(
        "parentbased_traceidratio", validation_alias=_env("traces_sampler", "OTEL_TRACES_SAMPLER"),
        description="Sampler of new spans; the ratio is trace_sample_rate (OTEL_TRACES_SAMPLER_ARG).",
    )
    propagators: str = Field(
        "tracecontext,baggage", validation_alias=_env("propagators", "OTEL_PROPAGATORS"),
        description="Context propagation formats, in and out, comma-separated: tracecontext, baggage, "
        "b3, b3multi (pip install opentelemetry-propagator-b3), any installed propagator, or none.",
    )
    traces_exporter: Literal["otlp", "console", "none"] | None = Field(
        None, validation_alias=_env("traces_exporter", "OTEL_TRACES_EXPORTER"),
        description="Where spans go: otlp, console or none; unset: OTLP when an endpoint is set, else the store.",
    )
    otlp_traces_endpoint: str | None = Field(
        None, validation_alias=_env("otlp_traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        description="OTLP URL for spans, used as it is (it wins over otlp_endpoint for spans).",
    )
    logs_exporter: Literal["otlp", "none"] | None = Field(
        None, validation_alias=_env("logs_exporter", "OTEL_LOGS_EXPORTER"),
        description="otlp: every log line also as an OTLP log record (to otlp_logs_endpoint, else "
        "otlp_endpoint's /v1/logs); unset or none: logs go to stdout and files only.",
    )
    otlp_logs_endpoint: str | None = Field(
        None, validation_alias=_env("otlp_logs_endpoint", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
        description="OTLP URL for log records, used as it is; setting it turns the OTLP log export on.",
    )

    # errors and alerts
    sentry_dsn: SecretStr | None = Field(None, description="Also forward errors to Sentry.")
    alerts: dict[str, Any] = Field(
        default_factory=dict, description="Alert rules and channels ([[alerts.rules]], [[alerts.channels]])."
    )
    alert_dispatcher: bool = Field(True, description="Deliver alerts from a task in the app process.")
    monitors: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Cron monitors ([[monitors]]: name, schedule, timezone, margin, max_runtime).",
    )
    monitor_token: SecretStr | None = Field(
        None, description="Bearer token of the monitor check-in endpoint `POST <prefix>/api/checkins/NAME` "
        "(the dashboard token works too; neither set: loopback clients only).",
    )
    errors: dict[str, Any] = Field(
        default_factory=dict,
        description="Error grouping and classification rules ([[errors.fingerprint_rules]], "
        "[[errors.severity_rules]], [[errors.category_rules]]), tried before the defaults.",
    )

    # kansoku server: ingestion of other services' Sentry events and OTLP
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL where senders reach `kansoku server` (in the DSNs and OTLP endpoints printed).",
    )
    ingest_max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest ingest request body, as sent (compressed); larger: 413.",
    )
    ingest_max_decompressed_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest ingest body once decompressed (gzip bombs stop here): 413.",
    )
    ingest_rate_limit: int = Field(
        0, ge=0, description="Events and spans accepted per minute and project key (a project's own "
        "limit wins); over it: 429 with Retry-After. 0: no limit.",
    )

    strict: bool = Field(False, description="Raise kansoku's internal errors instead of reporting them (tests).")

    @field_validator("log_level", "trace_level", "log_store_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _store_backend(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower() if "://" in value else ""
        if scheme not in _STORE_SCHEMES:
            raise ValueError(
                "kansoku stores in SQLite or PostgreSQL: use sqlite:///path/kansoku.db or "
                "postgresql://user:password@host/db")
        return value

    @field_validator("log_store_levels", mode="before")
    @classmethod
    def _upper_values(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: level.upper() if isinstance(level, str) else level for key, level in value.items()}

    @field_validator("route_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or len(value) < 2:
            raise ValueError("must start with '/' and not end with '/', for example '/kansoku'")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlSource(settings_cls))

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, every secret replaced by '***'."""
        from kansoku.redact import Redactor  # redact depends on settings' values only

        data = self.model_dump(mode="json")
        for name, value in data.items():
            if value is not None and isinstance(getattr(self, name), SecretStr):
                data[name] = "***"
        data["database_url"] = _mask_url(self.database_url, keep_path=True)
        alerts = Redactor(mask="***").redact(data["alerts"])
        for channel in alerts.get("channels", []) if isinstance(alerts, dict) else []:
            for key, value in list(channel.items()) if isinstance(channel, dict) else []:
                if isinstance(value, str) and "://" in value:  # webhook URLs carry their secret in the path
                    channel[key] = _mask_url(value, keep_path=False)
        data["alerts"] = alerts
        return data

    @property
    def propagator_names(self) -> tuple[str, ...]:
        """The OTEL_PROPAGATORS names, in order, without duplicates."""
        names = [name.strip().lower() for name in self.propagators.split(",") if name.strip()]
        return tuple(dict.fromkeys(names))

    @property
    def service(self) -> str:
        """The service name to report (the configured one or 'kansoku-app')."""
        return self.service_name or "kansoku-app"


class TomlSource(PydanticBaseSettingsSource):
    """Reads `kansoku.toml` (path from KANSOKU_CONFIG), expanding `${VAR}` references."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ returns the whole mapping at once

    def __call__(self) -> dict[str, Any]:
        path = config_path(os.environ)
        if path is None:
            return {}
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"KANSOKU_CONFIG={str(path)!r}: cannot read the file ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        section = raw.pop("kansoku", {})  # [kansoku] table and top-level keys both work
        expanded: dict[str, Any] = expand_refs({**raw, **section}, os.environ, where=str(path))
        return expanded


def config_path(environ: Mapping[str, str]) -> Path | None:
    """The configuration file in force: KANSOKU_CONFIG, else ./kansoku.toml if present."""
    named = environ.get("KANSOKU_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"KANSOKU_CONFIG={named!r}: no such file; unset it or point it at a TOML file")
        return path
    default = Path("kansoku.toml")
    return default if default.is_file() else None


def expand_refs(value: Any, environ: Mapping[str, str], *, where: str, key: str = "") -> Any:
    """Replace `${VAR}` in every string of `value` by the variable's value; a missing one is an error."""
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(
                    f"{where}: key {key or '?'!r} refers to ${{{name}}}, which is not set; "
                    f"export {name}=... or remove the reference"
                )
            return environ[name]

        return _VAR_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_refs(v, environ, where=where, key=f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_refs(v, environ, where=where, key=f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def load_settings(**overrides: Any) -> Settings:
    """Build the effective `Settings`; raise `ConfigError` with one clear message when invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = _field_name(loc[0]) if loc else ""
        name = ".".join([field, *loc[1:]]) or "?"
        value = error.get("input")
        shown = "***" if _is_secret(field) else repr(value)
        if field == "database_url" and isinstance(value, str) and "://" in value:  # no password in the message
            shown = repr(_mask_url(value, keep_path=True))
        where = f"{name} (environment {ENV_PREFIX}{field.upper()} or key {name!r} in kansoku.toml)"
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {name!r} = {shown}; see `kansoku config check --help` for the names")
        else:
            lines.append(f"{where} = {shown}: {error['msg']}")
    return "invalid kansoku configuration:\n  " + "\n  ".join(lines)


def _mask_url(url: str, *, keep_path: bool) -> str:
    """A URL with its password (and, unless kept, its path and query) replaced by ***."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
    rest = parts.path if keep_path else ("/***" if parts.path not in ("", "/") or parts.query else "")
    return f"{parts.scheme}://{user}{host}{port}{rest}"


def _field_name(loc: str) -> str:
    """The field behind a validation location, which may be an environment alias."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if loc == name or (isinstance(alias, AliasChoices) and loc in alias.choices):
            return name
    return loc


def _is_secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    return info is not None and "SecretStr" in str(info.annotation)
