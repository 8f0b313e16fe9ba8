"""The parts of kansoku that run without an app: the worker (alerts, retention) and the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from kansoku.cli._common import alerting_or_exit, mask_url, monitors_or_exit, open_store, open_store_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kansoku.alerts import AlertEngine, Dispatcher
    from kansoku.settings import Settings
    from kansoku.store import Store
    from kansoku.typing import ASGIApp

RETENTION_EVERY_SECONDS = 3600.0


def run_worker(settings: Settings, *, once: bool) -> None:
    """Deliver due alerts and apply retention: once, or until SIGINT/SIGTERM."""
    from kansoku.alerts import AlertEngine, Dispatcher
    from kansoku.logs import configure_logging, get_logger

    config = alerting_or_exit(settings)
    with open_store(settings) as store:
        configure_logging(settings, service=settings.service)  # after the store's own start-up chatter
        log = get_logger("kansoku.worker")
        # The engine's tick evaluates the HTTP rules and re-sends firing Alertmanager alerts.
        engine = AlertEngine(config, store.engine, monitors=monitors_or_exit(settings))
        dispatcher = Dispatcher(config, store.engine, alert_engine=engine)
        if once:
            sent = dispatcher.run_once()
            deleted = _retention(store.engine, settings)
            click.echo(f"kansoku worker: {sent} notification(s) processed, retention removed {deleted} row(s)")
            return
        log.info("kansoku worker started", store=mask_url(settings.database_url),
                 retention_days=settings.retention_days)
        asyncio.run(_serve_worker(dispatcher, store.engine, settings))
        log.info("kansoku worker stopped")


async def _serve_worker(dispatcher: Dispatcher, engine: Engine, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    delivering = asyncio.create_task(dispatcher.run(), name="kansoku-dispatcher")
    last_retention = 0.0
    while not stop.is_set():
        if time.monotonic() - last_retention >= RETENTION_EVERY_SECONDS:
            last_retention = time.monotonic()
            await asyncio.to_thread(_retention, engine, settings)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=60.0)
    dispatcher.stop()  # it finishes the delivery in progress; the rest stays in the outbox
    with contextlib.suppress(asyncio.CancelledError):
        await delivering


def _retention(engine: Engine, settings: Settings) -> int:
    """Apply the retention settings; the number of rows deleted."""
    from kansoku.store.queries import enforce_retention

    deleted = enforce_retention(engine, days=settings.retention_days,
                                max_events_per_group=settings.max_events_per_group)
    return sum(deleted.values())


@dataclass
class DashboardParts:
    """What `build_web_app` reads of a runtime, for a process that runs no app (no own tracker)."""

    settings: Settings
    store: Store
    alerts: AlertEngine
    errors: None = None
    debugger: None = None

    @property
    def engine(self) -> Engine:
        """The store's engine."""
        return self.store.engine


def build_dashboard(settings: Settings) -> ASGIApp:
    """The dashboard and API under the route prefix, with /health and /ready, over the store.

    Its own requests are not counted as the app's traffic: no middleware, no request statistics.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse
    from starlette.routing import Mount, Route

    from kansoku.alerts import AlertEngine
    from kansoku.logs import configure_logging
    from kansoku.runtime.endpoints import Readiness, ReadyEndpoint
    from kansoku.web.app import build_web_app

    config = alerting_or_exit(settings)
    configure_logging(settings, service=settings.service)
    store = open_store_or_exit(settings, ping=True)
    readiness = Readiness()
    readiness.register("store", store.ping)
    parts = DashboardParts(settings=settings, store=store, alerts=AlertEngine(config, store.engine))

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{settings.route_prefix}/")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        parts.alerts.close()
        store.close()

    return Starlette(lifespan=lifespan, routes=[
        Route("/", home), Route("/health", health, methods=["GET", "HEAD"]),
        Route("/ready", ReadyEndpoint(readiness), methods=["GET", "HEAD"]),
        Mount(settings.route_prefix, app=build_web_app(parts)),
    ])
