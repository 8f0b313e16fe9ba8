"""`build_web_app(runtime)`: the JSON API and the dashboard in one Starlette app, behind auth.

The app is served under `settings.route_prefix`: the middleware (or `kansoku dashboard`) passes a
scope whose ``root_path`` ends with the prefix, so routes here are "/", "/errors", "/api/errors".
The API route lists come from the parts that own them and are included when their module is
there; the dashboard works with only settings and an engine (the standalone `kansoku dashboard`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from kansoku._safety import suppress_internal_errors
from kansoku.logs import get_logger
from kansoku.settings import Settings
from kansoku.typing import ASGIApp, Clock, Scope
from kansoku.web._sessions import SessionState
from kansoku.web.auth import AuthMiddleware
from kansoku.web.dashboard import DashboardContext, dashboard_routes
from kansoku.web.dashboard.commands import slack_resolver

__all__ = ["build_web_app", "engine_of"]

log = get_logger("kansoku.web")


def engine_of(runtime: Any) -> Engine | None:
    """The store's engine: `runtime.store.engine`, else `runtime.engine`, else None."""
    store = getattr(runtime, "store", None)
    engine = getattr(store, "engine", None) if store is not None else None
    return engine if engine is not None else getattr(runtime, "engine", None)


def _optional_routes(module_name: str, function: str, *args: Any, **kwargs: Any) -> list[BaseRoute]:
    """Routes from `module_name.function(*args, **kwargs)`, or none when that module is not installed."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the module exists but one of its imports is missing: a bug
            raise
        log.debug("web routes not available", module=module_name)
        return []
    with suppress_internal_errors(f"web.app.{module_name}"):
        made = getattr(module, function)(*args, **kwargs)
        return list(made) if isinstance(made, list | tuple) else [made]
    return []  # reported: the dashboard still serves without that part's API


def slack_signing_secret(settings: Settings, alerts: Any) -> str | None:
    """The signing secret of the first Slack channel that has one (None: no Slack actions route)."""
    config = getattr(alerts, "config", None)
    if config is None:
        try:
            from kansoku.alerts.rules import load_alerting

            config = load_alerting(settings)
        except Exception:  # a bad [alerts] table is reported by the alerts part and the alerts page
            return None
    for channel in config.channels.values():
        secret = getattr(channel, "signing_secret", None)
        if secret is not None:
            return str(secret.get_secret_value())
    return None


def api_routes(runtime: Any, engine: Engine | None, clock: Clock) -> list[BaseRoute]:
    """The JSON API and the Slack actions endpoint, from the parts that are present."""
    tracker = getattr(runtime, "errors", None)
    debugger = getattr(runtime, "debugger", None)
    alerts = getattr(runtime, "alerts", None)
    routes: list[BaseRoute] = []
    if engine is not None:
        routes += _optional_routes("kansoku.web.api_errors", "routes", engine, tracker,
                                   getattr(alerts, "on_resolve", None))
        routes += _optional_routes("kansoku.web.api_alerts", "routes", engine, alerts)
        routes += _optional_routes("kansoku.web.api_monitors", "routes", engine, runtime.settings,
                                   monitor_specs(runtime.settings), clock=clock)
        routes += _optional_routes("kansoku.web.api_search", "routes", engine)
        secret = slack_signing_secret(runtime.settings, alerts)
        if secret:
            resolve = slack_resolver(engine, alerts, clock)
            routes += _optional_routes("kansoku.web.slack_actions", "route", secret, resolve, clock=clock)
    if debugger is not None:
        routes += _optional_routes("kansoku.web.api_debug", "routes", debugger)
    return routes


def build_web_app(runtime: Any, *, clock: Clock = time.time) -> ASGIApp:
    """The kansoku web app (API + dashboard) for `runtime`, wrapped in `AuthMiddleware`.

    `runtime` needs `settings`; `store`/`engine`, `errors`, `debugger` and `alerts` are optional.
    `clock` (epoch seconds) drives the pages' time windows and the session expiry.
    """
    settings = runtime.settings
    engine = engine_of(runtime)
    ctx = DashboardContext(settings=settings, engine=engine, tracker=getattr(runtime, "errors", None),
                           debugger=getattr(runtime, "debugger", None), alerts=getattr(runtime, "alerts", None),
                           clock=clock)
    app = Starlette(routes=[*api_routes(runtime, engine, clock), *dashboard_routes(ctx)])
    login = ctx.templates.get_template("login.html")

    def login_page(scope: Scope, context: Mapping[str, Any]) -> str:
        return login.render(**context)

    # The check-in endpoint takes the monitor token itself (jobs on other hosts, no session, no CSRF).
    return AuthMiddleware(app, settings, login_page=login_page, clock=clock, state=SessionState(engine, clock=clock),
                          exempt=("/slack/actions", "/api/checkins/"))


def monitor_specs(settings: Settings) -> dict[str, Any]:
    """The monitors of kansoku.toml by name (none when the table is invalid: `config check` says why)."""
    from kansoku.exceptions import ConfigError
    from kansoku.monitors import parse_monitors

    try:
        return {spec.name: spec for spec in parse_monitors(settings.monitors)}
    except ConfigError:
        return {}
