"""`kansoku server`: the ingest endpoints, the dashboard, the JSON API and the background work.

One Starlette app over the configured store: Sentry envelopes and OTLP/HTTP at the root (routes
of `kansoku.ingest`), the dashboard and API under the route prefix, `/health` and `/ready`. Its
lifespan runs what `kansoku worker` runs (alert delivery, retention every hour) beside the error
tracker and the span and log writers that the ingested records go through; at shutdown (SIGTERM, Ctrl-C)
it first flushes everything it acknowledged to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route

from kansoku import _safety
from kansoku.settings import Settings, load_settings

if TYPE_CHECKING:
    from kansoku.alerts import AlertEngine, Dispatcher
    from kansoku.errors import ErrorTracker
    from kansoku.ingest.routes import Ingest
    from kansoku.ingest.sink import Sink
    from kansoku.store import Store

__all__ = ["Server", "build_server", "create_app"]

RETENTION_EVERY_SECONDS: Final = 3600.0
FLUSH_SECONDS: Final = 20.0


@dataclass
class Server:
    """The parts of one server process (what `build_web_app` reads, plus the ingest side)."""

    settings: Settings
    store: Store
    errors: ErrorTracker
    alerts: AlertEngine
    dispatcher: Dispatcher
    spans: Sink
    logs: Sink
    ingest: Ingest
    debugger: None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        """The store's engine."""
        return self.store.engine

    async def start(self) -> None:
        """Start the tracker, alert delivery and the periodic retention."""
        self.errors.start()
        if self.settings.alert_dispatcher:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="kansoku-dispatcher"))
        self._tasks.append(asyncio.create_task(self._periodic(), name="kansoku-retention"))

    async def _periodic(self) -> None:
        from kansoku.store.queries import enforce_retention

        while True:
            with _safety.suppress_internal_errors("server.retention"):
                await asyncio.to_thread(enforce_retention, self.engine, days=self.settings.retention_days,
                                        max_events_per_group=self.settings.max_events_per_group)
                await asyncio.to_thread(self.alerts.evaluate_http_rules)
            await asyncio.sleep(RETENTION_EVERY_SECONDS)

    async def stop(self) -> None:
        """Stop the background work, then write every acknowledged record to the store."""
        with _safety.suppress_internal_errors("server.dispatcher.stop"):
            self.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = FLUSH_SECONDS) -> None:
        """Flush the span and log writers and the error tracker, then close the store."""
        with _safety.suppress_internal_errors("server.close.spans"):
            self.spans.close(timeout)
        with _safety.suppress_internal_errors("server.close.logs"):
            self.logs.close(timeout)
        with _safety.suppress_internal_errors("server.close.errors"):
            self.errors.close(timeout)
        with _safety.suppress_internal_errors("server.close.alerts"):
            self.alerts.close()
        self.store.close()


def build_server(settings: Settings) -> tuple[Starlette, Server]:
    """The server app and its parts, over the store of `settings` (migrated when SQLite)."""
    from kansoku.alerts import AlertEngine, Dispatcher
    from kansoku.errors import ErrorTracker
    from kansoku.ingest import ingest_routes
    from kansoku.ingest.keys import KeyCache, RateLimiter
    from kansoku.ingest.logs import log_sink
    from kansoku.ingest.pipeline import Ingestor
    from kansoku.ingest.routes import Ingest
    from kansoku.ingest.spans import span_sink
    from kansoku.logs import configure_logging
    from kansoku.runtime.endpoints import Readiness, ReadyEndpoint
    from kansoku.store import Store
    from kansoku.store.projects import authenticate
    from kansoku.web.app import build_web_app

    if settings.strict:
        _safety.set_strict(True)
    configure_logging(settings, service=settings.service)
    store = Store.open(settings)
    errors = ErrorTracker(settings, store.engine)
    alerts = AlertEngine(settings, store.engine)
    errors.add_listener(alerts.on_error)
    spans = span_sink(store.engine, errors.redactor, maxsize=settings.queue_size)
    logs = log_sink(store.engine, errors.redactor, maxsize=settings.queue_size)
    ingest = Ingest(settings, KeyCache(lambda key: authenticate(store.engine, key)), RateLimiter(),
                    Ingestor(errors, spans, logs, store.engine))
    server = Server(settings, store, errors, alerts, Dispatcher(settings, store.engine, alert_engine=alerts),
                    spans, logs, ingest)
    readiness = Readiness()
    readiness.register("store", store.ping)
    readiness.register("errors", errors.problem)

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{settings.route_prefix}/")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = Starlette(lifespan=lifespan, routes=[
        *ingest_routes(ingest), Route("/", home), Route("/health", health, methods=["GET", "HEAD"]),
        Route("/ready", ReadyEndpoint(readiness), methods=["GET", "HEAD"]),
        Mount(settings.route_prefix, app=build_web_app(server, clock=time.time)),
    ])
    return app, server


def create_app() -> Starlette:
    """The server app from the environment (uvicorn's factory, one call per worker process)."""
    return build_server(load_settings())[0]
