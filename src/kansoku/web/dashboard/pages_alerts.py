"""Alert pages: rules, channels (secrets masked), silences (add, expire) and the delivery log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kansoku.redact import Redactor
from kansoku.store import queries as q
from kansoku.web.auth import access_of
from kansoku.web.dashboard import commands
from kansoku.web.dashboard.context import DashboardContext, Endpoint, no_store, redirect
from kansoku.web.dashboard.present import mask_channel

__all__ = ["DURATIONS", "ROUTES"]

DURATIONS = {"30": "30 minutes", "60": "1 hour", "240": "4 hours", "1440": "1 day", "10080": "1 week"}
LOG_PAGE = 50


def alerting_view(ctx: DashboardContext) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], str]:
    """(rules, masked channels, problem) from the alert engine's configuration or the settings."""
    config = getattr(ctx.alerts, "config", None)
    problem = ""
    if config is None:
        try:
            from kansoku.alerts.rules import load_alerting

            config = load_alerting(ctx.settings)
        except Exception as exc:  # a bad [alerts] table: show why (scrubbed), keep the rest of the page
            problem = Redactor(mask="***").redact_text(str(exc))
    if config is None:
        raw = ctx.settings.masked().get("alerts") or {}
        rules = [dict(r) for r in raw.get("rules", []) if isinstance(r, Mapping)]
        channels = {str(c.get("name", "?")): mask_channel(c) for c in raw.get("channels", [])
                    if isinstance(c, Mapping)}
        return rules, channels, problem
    rules = [rule.model_dump(mode="json") for rule in config.rules]
    channels = {name: mask_channel(channel.model_dump(mode="json")) for name, channel in config.channels.items()}
    return rules, channels, problem


def _page_data(ctx: DashboardContext, status: str, page: int) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    now = ctx.clock()
    rules, channels, problem = alerting_view(ctx)
    return {
        "rules": rules,
        "channels": channels,
        "problem": problem,
        "silences": q.silence_list(engine, now - 86400),
        "deliveries": q.deliveries(engine, status=status, limit=LOG_PAGE, offset=(page - 1) * LOG_PAGE),
    }


async def alerts_page(ctx: DashboardContext, request: Request) -> Response:
    """GET /alerts: everything about alerting; query parameters pre-fill the silence form."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    params = request.query_params
    status = params.get("status", "")
    status = status if status in q.DELIVERY_STATUSES else ""
    page = int(params["page"]) if params.get("page", "").isdigit() and 0 < int(params["page"]) < 10_000 else 1
    data = await ctx.read(_page_data, ctx, status, page)
    more = data["deliveries"]["total"] > page * LOG_PAGE
    prefill = {key: params.get(key, "")[:256] for key in ("rule", "group_key", "tag", "text")}
    return ctx.page(request, "alerts.html", page_name="alerts", title="Alerts", status=status, page=page,
                    more=more, statuses=q.DELIVERY_STATUSES, durations=DURATIONS, prefill=prefill,
                    **{**data, "deliveries": data["deliveries"]["items"]})


async def add_silence(ctx: DashboardContext, request: Request) -> Response:
    """POST /alerts/silences: silence matching alerts for a while (at least one matcher)."""
    form = await request.form()
    fields = {key: str(form.get(key, "")).strip()[:256] for key in ("rule", "group_key", "tag", "text")}
    minutes = str(form.get("minutes", "60"))
    comment = str(form.get("comment", "")).strip()[:1000]
    if not any(fields.values()) or minutes not in DURATIONS or ctx.engine is None:
        return redirect(request, "/alerts", done="silence-invalid", **fields)
    who = f"dashboard ({access_of(request.scope).via})"
    engine, alerts, now = ctx.engine, ctx.alerts, ctx.clock()
    await ctx.read(lambda: commands.add_silence(engine, alerts, now=now, minutes=float(minutes), comment=comment,
                                                created_by=who, **fields))
    return redirect(request, "/alerts", done="silence")


async def expire_silence(ctx: DashboardContext, request: Request) -> Response:
    """POST /alerts/silences/{id}/expire: end a silence now."""
    if ctx.engine is not None:
        silence_id = int(request.path_params["silence_id"])
        await ctx.read(commands.expire_silence, ctx.engine, ctx.alerts, silence_id, ctx.clock())
    return redirect(request, "/alerts", done="expire")


async def retry_delivery(ctx: DashboardContext, request: Request) -> Response:
    """POST /alerts/deliveries/{id}/retry: queue a dead notification again."""
    from kansoku.alerts.outbox import retry_dead

    ok = False
    if ctx.engine is not None:
        ok = await ctx.read(retry_dead, ctx.engine, int(request.path_params["outbox_id"]), ctx.clock())
    return redirect(request, "/alerts", done="retry" if ok else "retry-none")


ROUTES: list[tuple[str, Endpoint, list[str]]] = [
    ("/alerts", alerts_page, ["GET"]),
    ("/alerts/silences", add_silence, ["POST"]),
    ("/alerts/silences/{silence_id:id}/expire", expire_silence, ["POST"]),
    ("/alerts/deliveries/{outbox_id:id}/retry", retry_delivery, ["POST"]),
]
