"""`kansoku demo`: the demo app under uvicorn, with live traffic, a banner and a clean Ctrl-C.

The store, log files and the traffic summary go to `.kansoku/` in the current directory. Settings
the user gave (environment, kansoku.toml, options) win over the demo's choices; the demo's alert
rules are added to the user's, and route to the `log` channel plus every configured channel (an
e-mail or Slack channel in kansoku.toml receives the demo's alerts too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from sqlalchemy.engine import make_url

import kansoku
from kansoku.alerts.rules import load_alerting
from kansoku.demo.app import create_app
from kansoku.demo.traffic import TrafficStats, drive
from kansoku.settings import Settings, load_settings

__all__ = ["DEMO_DIR", "demo_alerts", "demo_settings", "run_demo"]

DEMO_DIR = Path(".kansoku")

_DEMO_CHOICES: Mapping[str, Any] = {
    "service_name": "kansoku-demo",
    "log_dir": DEMO_DIR / "logs",
    "trace_level": "DETAILED",
    "slow_threshold_ms": 500.0,
    # Severities for the demo's own exceptions, so the chapter's severity rules have work to do.
    "errors": {"severity_rules": [
        {"name": "over the payment limit", "severity": "high", "types": ["PaymentLimitExceeded"]},
        {"name": "bad dataset items", "severity": "medium", "types": ["ItemError"]},
    ]},
}

_DEMO_RULES = (
    {"name": "demo_new_error", "kind": "first_seen", "description": "A new kind of error appeared",
     "suppression_minutes": 0},
    {"name": "demo_payment_failures", "description": "Payments failing repeatedly",
     "categories": ["business_logic"], "error_count_threshold": 3, "time_window_minutes": 5,
     "suppression_minutes": 10},
    {"name": "demo_error_ratio", "kind": "http_error_ratio", "description": "Over 20% of requests fail",
     "threshold": 0.2, "time_window_minutes": 5, "min_requests": 20, "suppression_minutes": 15},
)


def demo_alerts(configured: Mapping[str, Any]) -> dict[str, Any]:
    """The demo's rules and `log` channel, merged with the configured `alerts` table."""
    channels = [{"name": "log", "type": "log", "level": "warning"}]
    channels += [dict(c) for c in configured.get("channels", []) if c.get("name") != "log"]
    taken = {rule.get("name") for rule in configured.get("rules", [])}
    rules = [dict(rule) for rule in _DEMO_RULES if rule["name"] not in taken]
    merged = {**configured, "channels": channels, "rules": [*rules, *configured.get("rules", [])]}
    merged.setdefault("group_wait_seconds", 2.0)  # notifications within seconds: it is a demo
    merged.setdefault("poll_seconds", 0.5)
    return merged


def demo_settings(overrides: Mapping[str, Any], host: str) -> dict[str, Any]:
    """Keyword settings for `instrument()`: the demo's choices where the user chose nothing."""
    base = load_settings(**overrides)
    chosen = {key: value for key, value in _DEMO_CHOICES.items() if key not in base.model_fields_set}
    chosen["alerts"] = demo_alerts(base.alerts)
    if base.dashboard_token is None and not _is_loopback(host):
        chosen["dashboard_token"] = secrets.token_urlsafe(18)  # never an open dashboard on a network
    return {**chosen, **overrides}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_demo(*, host: str, port: int, traffic: bool, rate: float, overrides: Mapping[str, Any],
             out: TextIO = sys.stderr) -> TrafficStats:
    """Serve the instrumented demo until Ctrl-C; returns what the traffic generator sent."""
    DEMO_DIR.mkdir(exist_ok=True)
    keywords = demo_settings(overrides, host)
    app = kansoku.instrument(create_app(), **keywords)
    settings: Settings = app.state.kansoku.settings
    generated = keywords.get("dashboard_token") if "dashboard_token" not in overrides else None
    stats = TrafficStats()
    try:
        asyncio.run(_serve(app, settings, host=host, port=port, traffic=traffic, rate=rate, stats=stats, out=out,
                           generated_token=generated))
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; the shutdown (and every flush) is done by then
    summary = DEMO_DIR / "demo-traffic.json"
    summary.write_text(json.dumps(stats.as_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"kansoku demo stopped: {stats.sent} requests sent ({summary}); the store and logs stay in "
          f"{DEMO_DIR}/. Look back with `kansoku errors list` and `kansoku stats`.", file=out, flush=True)
    return stats


async def _serve(app: Any, settings: Settings, *, host: str, port: int, traffic: bool, rate: float,
                 stats: TrafficStats, out: TextIO, generated_token: str | None) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it failed to start: uvicorn logged why and exits
            return
        await asyncio.sleep(0.05)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only a display choice
    out.write(banner(settings, f"http://{shown}:{port}", generated_token, traffic, rate))
    out.flush()
    driver = None
    if traffic:
        # The traffic driver's own client would log every call it makes; those are not the app's lines.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        driver = asyncio.create_task(drive(f"http://{shown}:{port}", rate=rate, stats=stats, progress=out,
                                           should_stop=lambda: server.should_exit,
                                           redraw=out.isatty() and not sys.stdout.isatty()))
    await serving
    if driver is not None:
        await driver


def banner(settings: Settings, base: str, generated_token: str | None, traffic: bool, rate: float) -> str:
    """Where everything is, and how to log in to the dashboard."""
    if settings.dashboard_token is None:
        login = "no login from this machine (loopback clients need none while KANSOKU_DASHBOARD_TOKEN is unset)"
    elif generated_token is not None:
        login = f"log in with token {generated_token} (made for this run; KANSOKU_DASHBOARD_TOKEN sets one)"
    else:
        login = "log in with the token in KANSOKU_DASHBOARD_TOKEN"
    channels = ", ".join(load_alerting(settings).channels)
    store = make_url(settings.database_url).render_as_string(hide_password=True)
    lines = [
        "",
        "kansoku demo: the chapter's example shop (users, orders, data processing, payments), instrumented",
        f"  app        {base}/            API docs {base}/docs",
        f"  dashboard  {base}{settings.route_prefix}/   {login}",
        f"  metrics    {base}/metrics    health {base}/health   ready {base}/ready",
        f"  store      {store}   logs {settings.log_dir or 'stdout only'}",
        f"  alerts     channels: {channels}   (add e-mail or Slack in kansoku.toml: docs/alerting.md)",
        f"  traffic    {f'{rate:g} requests/s, a realistic mix with failures' if traffic else 'off (--no-traffic)'}",
        "  Ctrl-C stops the demo and flushes everything.",
        "",
    ]
    return "\n".join(lines) + "\n"
