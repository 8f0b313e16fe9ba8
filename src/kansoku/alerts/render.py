"""What a notification says: one item per error group, combined per rule and channel.

Items are built (and redacted) when the engine writes the outbox row, so what is stored is what is
sent. `combine` merges the rows the dispatcher sends together into one `Notification`; the text and
HTML renderings are shared by e-mail, SMS, Apprise and the log channel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypedDict

from kansoku.alerts.rules import AlertRule, SiteInfo, severity_rank
from kansoku.redact import Redactor
from kansoku.typing import ErrorEvent

__all__ = [
    "DELIVERED",
    "MESSAGE",
    "AlertItem",
    "Notification",
    "alert_item",
    "combine",
    "html_body",
    "http_item",
    "iso",
    "monitor_item",
    "probe_notification",
    "short_text",
    "text_body",
]

DELIVERED: Final = "delivered"  # payload key: recipients an earlier attempt of the row reached
MESSAGE: Final = "message_key"  # payload key: the Idempotency-Key of the row's first (failed) message
_MAX_TITLE: Final = 200
_MAX_MESSAGE: Final = 1000


class AlertItem(TypedDict):
    """One error group (or one HTTP condition) in a notification; JSON-ready and redacted."""

    group_key: str
    group_id: int | None
    title: str
    exception_type: str
    message: str
    culprit: str
    severity: str
    category: str
    count: int
    window_count: int
    suppressed: int
    url: str | None
    service: str
    environment: str
    release: str
    event_id: str
    tags: dict[str, str]
    starts_at: float
    status: str


class Notification(TypedDict):
    """Everything a channel needs to send one message."""

    kind: str  # trigger | resolve | test
    rule: str
    description: str
    rule_kind: str
    window_minutes: int
    severity: str
    title: str
    summary: str
    alerts: list[AlertItem]
    count: int
    suppressed: int
    service: str
    environment: str
    timestamp: float
    idempotency_key: str
    recipients: list[str]
    # Recipients reached already: a channel that sends to several skips them, and appends each one
    # it reaches during the attempt, so the dispatcher keeps that progress however the attempt ends.
    done: list[str]
    ref: str | None


def iso(ts: float) -> str:
    """RFC 3339 UTC time of an epoch timestamp (what Alertmanager and PagerDuty take)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_title(event: ErrorEvent) -> str:
    """"Type: first line of the message", bounded."""
    kind = event.get("exception_type") or "Error"
    first = (event.get("message") or "").strip().splitlines()
    return _cut(f"{kind}: {first[0]}" if first else kind, _MAX_TITLE)


def alert_item(
    rule: AlertRule,
    event: ErrorEvent,
    *,
    group_key: str,
    group_id: int | None,
    window_count: int,
    suppressed: int,
    now: float,
    site: SiteInfo,
    redactor: Redactor,
    count: int | None = None,
) -> AlertItem:
    """The item for one error group, from the event that fired the rule (redacted)."""
    frequency = rule.kind == "frequency"
    title = (f"{window_count} errors in {rule.time_window_minutes} min across groups"
             if frequency else event_title(event))
    item: dict[str, Any] = {
        "group_key": group_key,
        "group_id": None if frequency else group_id,
        "title": title,
        "exception_type": event.get("exception_type", ""),
        "message": _cut(event.get("message", ""), _MAX_MESSAGE),
        "culprit": event.get("culprit", ""),
        "severity": event.get("severity", rule.severity_threshold),
        "category": event.get("category", "application"),
        "count": window_count if count is None else count,
        "window_count": window_count,
        "suppressed": suppressed,
        "url": None if frequency else site.group_url(group_id),
        "service": event.get("service") or site.service,
        "environment": event.get("environment") or site.environment,
        "release": event.get("release", ""),
        "event_id": event.get("event_id", ""),
        "tags": dict(event.get("tags", {})),
        "starts_at": now,
        "status": "firing",
    }
    url = item.pop("url")
    redacted: dict[str, Any] = redactor.redact(item)
    redacted["url"] = url  # our own link: not user data, and the redactor must not touch it
    return redacted  # type: ignore[return-value]


def http_item(
    rule: AlertRule, *, service: str, value: float, requests: int, now: float, site: SiteInfo
) -> AlertItem:
    """The item for an HTTP error-ratio or latency condition of one service."""
    window = rule.time_window_minutes
    threshold = rule.threshold or 0.0
    if rule.kind == "http_error_ratio":
        title = f"5xx ratio {value:.1%} > {threshold:.1%} over {window} min ({requests} requests)"
    else:
        quantile = f"p{rule.quantile * 100:g}"
        title = f"{quantile} latency {value * 1000:.0f} ms > {threshold * 1000:.0f} ms over {window} min"
    base = site.dashboard_base()
    url = f"{base}/" if base is not None else None
    return AlertItem(
        group_key=f"http:{service}"[:64], group_id=None, title=title, exception_type="", message=title,
        culprit="", severity=rule.severity_threshold, category="performance", count=requests,
        window_count=requests, suppressed=0, url=url, service=service, environment=site.environment,
        release="", event_id="", tags={}, starts_at=now, status="firing",
    )


_MONITOR_TITLES: Final = {
    "missed": "Monitor {name} missed its run due {expected} ({schedule})",
    "failed": "Monitor {name}: a run failed{took}",
    "timeout": "Monitor {name}: a run is still going after {max_runtime:g}s (its maximum runtime)",
}


def monitor_item(rule: AlertRule, problem: str, monitor: Mapping[str, Any], checkin: Mapping[str, Any] | None,
                 *, now: float, site: SiteInfo) -> AlertItem:
    """The item for a monitor's missed, failed or over-runtime run (grouped by monitor)."""
    name = str(monitor["name"])
    schedule = (f"every {float(monitor['schedule']):g}s" if monitor["schedule_kind"] == "interval"
                else f"{monitor['schedule']} {monitor['timezone']}")
    expected = (checkin or {}).get("expected_at")
    duration = (checkin or {}).get("duration")
    title = _MONITOR_TITLES[problem].format(
        name=name, schedule=schedule, expected=iso(float(expected)) if expected is not None else "?",
        took=f" after {float(duration):.1f}s" if duration is not None else "",
        max_runtime=float(monitor["max_runtime_seconds"]))
    base = site.dashboard_base()
    url = f"{base}/monitors/{name}" if base is not None else None
    return AlertItem(
        group_key=f"monitor:{name}"[:64], group_id=None, title=_cut(title, _MAX_TITLE), exception_type="",
        message=title, culprit=name, severity=rule.severity_threshold, category="monitor", count=1,
        window_count=1, suppressed=0, url=url, service=site.service, environment=site.environment, release="",
        event_id=str((checkin or {}).get("checkin_id", "")), tags={"monitor": name, "problem": problem},
        starts_at=now, status="firing",
    )


def row_payload(rule: AlertRule, item: AlertItem, recipients: Sequence[str]) -> dict[str, Any]:
    """What one outbox row stores: the rule's identity, the item and the rule's recipients."""
    return {
        "rule": {"name": rule.name, "description": rule.description, "kind": rule.kind,
                 "window_minutes": rule.time_window_minutes},
        "item": dict(item),
        "recipients": list(recipients),
    }


def combine(
    kind: str, payloads: Sequence[Mapping[str, Any]], *, idempotency_key: str, created_at: float,
    ref: str | None = None,
) -> Notification:
    """One notification from the stored payloads of rows sent together (same rule and channel)."""
    rule: Mapping[str, Any] = payloads[0]["rule"]
    items: list[AlertItem] = [dict(p["item"]) for p in payloads]  # type: ignore[misc]
    if kind == "resolve":
        for item in items:
            item["status"] = "resolved"
    severity = max((item["severity"] for item in items), key=severity_rank, default="low")
    prefix = "RESOLVED" if kind == "resolve" else severity.upper()
    what = items[0]["title"] if len(items) == 1 else f"{len(items)} error groups"
    recipients = sorted({r for p in payloads for r in p.get("recipients", [])})
    # Skip a recipient only if every row's content reached it: a row that joined the batch after a
    # partial attempt is news to everyone (a repeat of the older rows beats a lost alert).
    done = set.intersection(*(set(p.get(DELIVERED, ())) for p in payloads))
    return Notification(
        kind=kind, rule=rule["name"], description=rule.get("description", ""),
        rule_kind=rule.get("kind", "errors"), window_minutes=int(rule.get("window_minutes", 5)),
        severity=severity, title=_cut(f"[{prefix}] {rule['name']}: {what}", _MAX_TITLE + 60),
        summary=_summary(kind, rule, items), alerts=items,
        count=sum(item["window_count"] for item in items),
        suppressed=sum(item["suppressed"] for item in items),
        service=items[0]["service"], environment=items[0]["environment"], timestamp=created_at,
        idempotency_key=idempotency_key, recipients=recipients, done=sorted(done), ref=ref,
    )


def _summary(kind: str, rule: Mapping[str, Any], items: Sequence[AlertItem]) -> str:
    if kind == "resolve":
        return "Resolved: " + "; ".join(item["title"] for item in items[:5])
    window = rule.get("window_minutes", 5)
    parts = []
    for item in items[:5]:
        extra = f", {item['suppressed']} suppressed since the last notification" if item["suppressed"] else ""
        parts.append(f"{item['title']} ({item['window_count']} in {window} min{extra})")
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return "; ".join(parts) + more


def probe_notification(
    channel: str, site: SiteInfo, now: float, recipients: Sequence[str] = ()
) -> Notification:
    """A harmless notification that `kansoku alerts test CHANNEL` sends."""
    item = AlertItem(
        group_key="kansoku-test", group_id=None, title="Test notification from kansoku",
        exception_type="", message=f"The channel {channel!r} works.", culprit="", severity="low",
        category="application", count=1, window_count=1, suppressed=0, url=site.group_url(None),
        service=site.service, environment=site.environment, release="", event_id="", tags={},
        starts_at=now, status="firing",
    )
    payload = row_payload(AlertRule(name="kansoku_test", description="Channel test"), item, recipients)
    return combine("test", [payload], idempotency_key=f"test:{channel}:{now:.3f}", created_at=now)


def text_body(note: Notification) -> str:
    """The plain-text rendering (e-mail text part, Apprise, log)."""
    lines = [note["title"], "", note["description"] or note["rule"], ""]
    for item in note["alerts"]:
        lines.append(f"- {item['title']}")
        if item["message"] and item["message"] not in item["title"]:
            lines.extend(f"  {line}" for line in item["message"].splitlines()[:20])
        lines.append(f"  severity {item['severity']}, category {item['category']}, "
                     f"{item['window_count']} in {note['window_minutes']} min, {item['count']} in all")
        if item["suppressed"]:
            lines.append(f"  {item['suppressed']} suppressed since the last notification")
        if item["culprit"]:
            lines.append(f"  at {item['culprit']}")
        if item["url"]:
            lines.append(f"  {item['url']}")
    lines += ["", f"service {note['service']} ({note['environment']}), {iso(note['timestamp'])}"]
    return "\n".join(lines)


def short_text(note: Notification, limit: int = 320) -> str:
    """A text short enough for an SMS: title, counts, one link."""
    extra = f", +{note['suppressed']} suppressed" if note["suppressed"] else ""
    url = next((item["url"] for item in note["alerts"] if item["url"]), None)
    text = f"{note['title']} ({note['count']} in {note['window_minutes']} min{extra})"
    if url and len(text) + len(url) + 1 <= limit:
        return f"{text} {url}"
    return _cut(text, limit)


if TYPE_CHECKING:
    import jinja2

_HTML_SOURCE: Final = (
    """<!doctype html><html><body style="font-family:sans-serif">
<h2 style="color:{{ colour }}">{{ note.title }}</h2>
<p>{{ note.description or note.rule }}</p>
{% for item in note.alerts %}<div style="border-left:4px solid {{ colour }};padding-left:8px;margin:8px 0">
<p><b>{{ item.title }}</b></p>
<p>Severity {{ item.severity }} &middot; category {{ item.category }} &middot; {{ item.window_count }}
in {{ note.window_minutes }} min &middot; {{ item.count }} in all{% if item.suppressed %} &middot;
{{ item.suppressed }} suppressed since the last notification{% endif %}</p>
{% if item.message %}<pre>{{ item.message }}</pre>{% endif %}
{% if item.culprit %}<p>at <code>{{ item.culprit }}</code></p>{% endif %}
{% if item.url %}<p><a href="{{ item.url }}">View details</a></p>{% endif %}
</div>{% endfor %}
<p style="color:#666">{{ note.service }} ({{ note.environment }}), {{ when }}</p>
</body></html>"""
)


@functools.cache
def _html_template() -> jinja2.Template:
    """The e-mail template, compiled on first use: Jinja2 is not imported by a process that sends none."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML_SOURCE)


COLOURS: Final = {"low": "#2eb886", "medium": "#daa038", "high": "#e8912d", "critical": "#d00000",
                  "emergency": "#8b0000", "resolved": "#2eb886"}


def colour(note: Notification) -> str:
    """The severity colour of a notification (green when resolved)."""
    return COLOURS["resolved"] if note["kind"] == "resolve" else COLOURS.get(note["severity"], "#daa038")


def html_body(note: Notification) -> str:
    """The HTML rendering, every value escaped (e-mail)."""
    return _html_template().render(note=note, colour=colour(note), when=iso(note["timestamp"]))
