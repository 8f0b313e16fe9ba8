"""Alert rules and channels: the chapter's fields, more rule kinds, and the `[alerts]` file format.

A rule says *when* to notify (severity threshold, category filter, N events in a window, a new or
regressed group, a rate across groups, an HTTP error ratio or latency) and *where* (channel names).
`load_alerting(settings)` turns `settings.alerts` (``[[alerts.rules]]`` and ``[[alerts.channels]]``
in kansoku.toml, already ``${VAR}``-expanded) into an `AlertingConfig`, raising `ConfigError` that
names the offending key. With no rules configured the chapter's four default rules apply; with no
channels, everything goes to one `log` channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from kansoku.exceptions import ConfigError
from kansoku.settings import Settings
from kansoku.typing import Severity

__all__ = [
    "CHANNEL_TYPES",
    "DEFAULT_MONITOR_RULE",
    "DEFAULT_RULES",
    "MONITOR_KIND",
    "SEVERITIES",
    "AlertRule",
    "AlertingConfig",
    "AlertmanagerChannel",
    "AppriseChannel",
    "ChannelConfig",
    "EmailChannel",
    "LogChannel",
    "PagerDutyChannel",
    "SiteInfo",
    "SlackChannel",
    "SmsChannel",
    "WebhookChannel",
    "load_alerting",
    "parse_alerting",
    "severity_rank",
]

SEVERITIES: Final = ("low", "medium", "high", "critical", "emergency")
_RANK: Final = {name: index for index, name in enumerate(SEVERITIES)}
RuleKind = Literal["errors", "first_seen", "regression", "frequency", "http_error_ratio", "http_latency", "monitor"]
GROUP_KINDS: Final = frozenset({"errors", "first_seen", "regression"})
HTTP_KINDS: Final = frozenset({"http_error_ratio", "http_latency"})
MONITOR_KIND: Final = "monitor"  # cron monitors: missed, failed and over-runtime runs (tags: monitor=NAME)


def severity_rank(severity: str) -> int:
    """Position of a severity in low < medium < high < critical < emergency (unknown: low)."""
    return _RANK.get(severity, 0)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AlertRule(_Frozen):
    """When to notify, and where. The chapter's fields plus kinds, thresholds and filters.

    `channels` empty means every configured channel. `recipients` override a channel's own list
    where they fit it (e-mail addresses for e-mail, ``+E.164`` numbers for SMS, channel ids or
    ``#names`` for Slack).
    """

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    kind: RuleKind = "errors"
    severity_threshold: Severity = "low"
    categories: tuple[str, ...] = Field((), validation_alias=AliasChoices("categories", "category_filter"))
    error_count_threshold: int = Field(1, ge=1)
    time_window_minutes: int = Field(5, ge=1, le=1440)
    channels: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    enabled: bool = True
    suppression_minutes: float = Field(
        60, ge=0, validation_alias=AliasChoices("suppression_minutes", "suppression_time_minutes")
    )
    threshold: float | None = Field(None, gt=0, description="error ratio (0.05) or latency seconds (0.5)")
    quantile: float = Field(0.95, gt=0, lt=1, description="latency quantile of http_latency rules")
    min_requests: int = Field(20, ge=1, description="http rules stay quiet below this many requests")
    services: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("categories", "services", "environments", "channels", "recipients", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("severity_threshold", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Self:
        """HTTP rules need a threshold; say which."""
        if self.kind in HTTP_KINDS and self.threshold is None:
            example = "0.05 (5% of requests)" if self.kind == "http_error_ratio" else "0.5 (seconds)"
            raise ValueError(f"rule kind {self.kind!r} needs `threshold`, for example {example}")
        if self.kind == "http_error_ratio" and self.threshold is not None and self.threshold > 1:
            raise ValueError("`threshold` of an http_error_ratio rule is a fraction between 0 and 1")
        return self

    @property
    def window_seconds(self) -> float:
        """The counting window in seconds."""
        return self.time_window_minutes * 60.0

    @property
    def suppression_seconds(self) -> float:
        """The suppression time in seconds."""
        return self.suppression_minutes * 60.0


class _Channel(_Frozen):
    name: str = Field(min_length=1, max_length=100)
    timeout: float = Field(10.0, gt=0, le=300, description="seconds for one delivery attempt")
    max_attempts: int = Field(8, ge=1, le=50, description="attempts before the notification is dead")
    min_severity: Severity = "low"


class SlackChannel(_Channel):
    """Slack: an incoming webhook URL, or a bot token and a channel (chat.postMessage, updatable)."""

    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"
    signing_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        """Exactly one mode: webhook, or token with a channel."""
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set either `webhook_url` or `token` (with `channel`)")
        if self.token is not None and not self.channel:
            raise ValueError("`token` needs `channel` (a channel id such as C0123456789 or #name)")
        return self


class EmailChannel(_Channel):
    """E-mail over SMTP (aiosmtplib): STARTTLS, implicit TLS or plain; optional login."""

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str = Field(validation_alias=AliasChoices("from_addr", "from", "from_email"))
    recipients: tuple[str, ...] = Field((), validation_alias=AliasChoices("recipients", "to"))
    validate_certs: bool = True


class WebhookChannel(_Channel):
    """JSON POST, signed with HMAC-SHA256 when `secret` is set."""

    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2."""

    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"


class SmsChannel(_Channel):
    """SMS through Twilio's Messages API."""

    type: Literal["sms"]
    account_sid: str
    auth_token: SecretStr
    from_number: str | None = Field(None, validation_alias=AliasChoices("from_number", "from"))
    messaging_service_sid: str | None = None
    recipients: tuple[str, ...] = Field((), validation_alias=AliasChoices("recipients", "to"))
    api_url: str = "https://api.twilio.com"

    @model_validator(mode="after")
    def _check(self) -> Self:
        """Twilio needs a sender: a number or a messaging service."""
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("set `from` (a Twilio number) or `messaging_service_sid`")
        return self


class AlertmanagerChannel(_Channel):
    """Prometheus Alertmanager API v2; firing alerts are re-sent every `resend_seconds`."""

    type: Literal["alertmanager"]
    url: str
    resend_seconds: float = Field(60.0, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)


class AppriseChannel(_Channel):
    """Any Apprise URL (Teams, Discord, Telegram, Opsgenie...); needs `kansoku[apprise]`."""

    type: Literal["apprise"]
    urls: tuple[SecretStr, ...] = Field(min_length=1)

    @field_validator("urls", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class LogChannel(_Channel):
    """Writes each notification as one log line (the default)."""

    type: Literal["log"]
    level: Literal["info", "warning", "error", "critical"] = "warning"


ChannelConfig = Annotated[
    SlackChannel | EmailChannel | WebhookChannel | PagerDutyChannel | SmsChannel | AlertmanagerChannel
    | AppriseChannel | LogChannel,
    Field(discriminator="type"),
]
CHANNEL_TYPES: Final = ("slack", "email", "webhook", "pagerduty", "sms", "alertmanager", "apprise", "log")
_CHANNEL: Final[TypeAdapter[ChannelConfig]] = TypeAdapter(ChannelConfig)
_RULE: Final = TypeAdapter(AlertRule)

DEFAULT_RULES: Final = (  # the chapter's four rules (8.4), with its thresholds and suppression times
    AlertRule(name="emergency_errors", description="Emergency level errors",
              severity_threshold="emergency", error_count_threshold=1, time_window_minutes=1,
              suppression_minutes=5),
    AlertRule(name="critical_errors", description="Critical errors requiring immediate attention",
              severity_threshold="critical", error_count_threshold=3, time_window_minutes=5,
              suppression_minutes=30),
    AlertRule(name="security_incidents", description="Security related errors",
              severity_threshold="medium", categories=("security",), error_count_threshold=1,
              time_window_minutes=1, suppression_minutes=15),
    AlertRule(name="performance_degradation", description="Performance related issues",
              severity_threshold="high", categories=("performance",), error_count_threshold=10,
              time_window_minutes=5, suppression_minutes=120),
)


# Cron monitors notify with no rule to write; a rule of kind "monitor" (even a disabled one) replaces it.
DEFAULT_MONITOR_RULE: Final = AlertRule(
    name="monitors", kind="monitor", description="Cron monitors: missed, failed and over-runtime runs",
    severity_threshold="high", suppression_minutes=0,
)


@dataclass(frozen=True)
class SiteInfo:
    """What notifications say about where they come from, and where links point."""

    service: str = "kansoku-app"
    environment: str = "development"
    dashboard_url: str | None = None
    route_prefix: str = "/kansoku"
    allow_pii: bool = False
    redact_keys: tuple[str, ...] = ()
    redact_allow_keys: tuple[str, ...] = ()

    def dashboard_base(self) -> str | None:
        """The dashboard's public URL, without a trailing slash; None when none is set.

        `dashboard_url` is the dashboard's own URL (`https://ops.example.com/kansoku`, or wherever a
        proxy serves it); a bare host (`https://ops.example.com`) means the dashboard at
        `route_prefix` on it.
        """
        if self.dashboard_url is None:
            return None
        url = self.dashboard_url.rstrip("/")
        return url if urlsplit(url).path else f"{url}{self.route_prefix}"

    def group_url(self, group_id: int | str | None) -> str | None:
        """The dashboard page of an error group, or None when no public dashboard URL is set."""
        base = self.dashboard_base()
        if base is None or group_id in (None, ""):
            return None
        return f"{base}/errors/{group_id}"


@dataclass(frozen=True)
class AlertingConfig:
    """Parsed alerting configuration: rules, channels by name, and timing knobs."""

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    channels: Mapping[str, ChannelConfig] = field(
        default_factory=lambda: {"log": LogChannel(name="log", type="log")}
    )
    site: SiteInfo = field(default_factory=SiteInfo)
    group_wait_seconds: float = 5.0
    poll_seconds: float = 1.0
    http_eval_seconds: float = 60.0

    def channels_of(self, rule: AlertRule) -> list[str]:
        """The channel names a rule routes to (all channels when the rule names none)."""
        return list(rule.channels) if rule.channels else list(self.channels)


_TOP_KEYS: Final = frozenset({"rules", "channels", "group_wait_seconds", "poll_seconds", "http_eval_seconds"})


def load_alerting(settings: Settings) -> AlertingConfig:
    """The alerting configuration of `settings` (its `alerts` mapping and identity)."""
    site = SiteInfo(
        service=settings.service, environment=settings.environment, dashboard_url=settings.dashboard_url,
        route_prefix=settings.route_prefix, allow_pii=settings.allow_pii, redact_keys=settings.redact_keys,
        redact_allow_keys=settings.redact_allow_keys,
    )
    return parse_alerting(settings.alerts, site=site)


def parse_alerting(raw: Mapping[str, Any], *, site: SiteInfo | None = None) -> AlertingConfig:
    """Parse an ``alerts`` mapping ({"rules": [...], "channels": [...]}); `ConfigError` names the key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"alerts: expected a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"alerts.{unknown[0]}: unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    channels = _parse_channels(raw.get("channels"))
    rules = _parse_rules(raw.get("rules"))
    for index, rule in enumerate(rules):
        for name in rule.channels:
            if name not in channels:
                raise ConfigError(
                    f"alerts.rules[{index}].channels: no channel named {name!r}; "
                    f"configured: {', '.join(channels) or 'none'}"
                )
    timing = {key: _number(raw, key) for key in ("group_wait_seconds", "poll_seconds", "http_eval_seconds")
              if key in raw}
    return AlertingConfig(rules=rules, channels=channels, site=site or SiteInfo(), **timing)


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"alerts.{key} = {value!r}: expected a number of seconds >= 0")
    return float(value)


def _parse_channels(raw: Any) -> dict[str, ChannelConfig]:
    if raw is None:
        return {"log": LogChannel(name="log", type="log")}
    items = _as_list(raw, "alerts.channels")
    channels: dict[str, ChannelConfig] = {}
    for index, item in enumerate(items):
        where = f"alerts.channels[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected a table with `name` and `type`")
        if item.get("type") not in CHANNEL_TYPES:
            allowed = ", ".join(CHANNEL_TYPES)
            raise ConfigError(f"{where}.type = {item.get('type')!r}: expected one of {allowed}")
        channel = _validate(_CHANNEL, item, where)
        if channel.name in channels:
            raise ConfigError(f"{where}.name = {channel.name!r}: two channels have this name")
        channels[channel.name] = channel
    return channels


def _parse_rules(raw: Any) -> tuple[AlertRule, ...]:
    if raw is None:
        return DEFAULT_RULES
    items = _as_list(raw, "alerts.rules")
    rules = [_validate(_RULE, item, f"alerts.rules[{i}]") for i, item in enumerate(items)]
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.name in seen:
            raise ConfigError(f"alerts.rules[{index}].name = {rule.name!r}: two rules have this name")
        seen.add(rule.name)
    return tuple(rules)


def _as_list(raw: Any, where: str) -> Sequence[Any]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ConfigError(f"{where}: expected a list of tables ([[{where}]] in kansoku.toml)")
    return raw


def _validate(adapter: TypeAdapter[Any], item: Any, where: str) -> Any:
    try:
        return adapter.validate_python(item)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where, item)) from None


def _explain(exc: ValidationError, where: str, item: Any) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if str(part) not in CHANNEL_TYPES and part != "AlertRule"]
        key = ".".join([where, *loc]) if loc else where
        value = error.get("input")
        secret = any(word in key for word in ("secret", "token", "password", "key", "url"))
        shown = "***" if secret else repr(value)
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif loc:
            lines.append(f"{key} = {shown}: {error['msg']}")
        else:
            lines.append(f"{key}: {error['msg']}")
    return "invalid alerting configuration:\n  " + "\n  ".join(lines)
