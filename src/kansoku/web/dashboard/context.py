"""What every dashboard page shares: its context (settings, engine, parts, clock) and small helpers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from kansoku.settings import Settings
from kansoku.typing import Clock
from kansoku.web.dashboard.render import make_templates, query_string, render

__all__ = ["DashboardContext", "Endpoint", "hour_labels", "no_store", "redirect"]

Endpoint = Callable[["DashboardContext", Request], Awaitable[Response]]


@dataclass
class DashboardContext:
    """What the pages need: settings, the store's engine and the optional runtime parts."""

    settings: Settings
    engine: Engine | None
    tracker: Any = None
    debugger: Any = None
    alerts: Any = None
    clock: Clock = time.time
    templates: Jinja2Templates = field(default_factory=make_templates)

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        """Render `name` with the common values."""
        return render(self.templates, request, name, context, status_code=status_code, now=self.clock())

    async def read(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking read in the thread pool (never on the event loop)."""
        return await run_in_threadpool(func, *args)


def redirect(request: Request, path: str, **params: str) -> RedirectResponse:
    """303 to a path inside the dashboard (after a POST: the browser then GETs it)."""
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(prefix + path + query_string(params), status_code=303)


def hour_labels(first_hour: int, count: int, fmt: str = "%H:00") -> list[str]:
    """Labels for hourly buckets starting at hour number `first_hour` (UTC)."""
    return [datetime.fromtimestamp((first_hour + i) * 3600, UTC).strftime(fmt) for i in range(count)]


def no_store(ctx: DashboardContext, request: Request) -> Response | None:
    """The 503 page when there is no store, else None (the page goes on)."""
    if ctx.engine is not None:
        return None
    return ctx.page(request, "message.html", status_code=503, page_name="", title="No store",
                    message="This dashboard has no store configured (KANSOKU_DATABASE_URL), so there is "
                            "nothing to show here.")
