"""The apps bench_http.py measures: one trivial FastAPI endpoint, bare or behind an observability stack.

`build(name)` returns the ASGI app for one configuration; `create()` reads the name from the
BENCH_CONFIG environment variable, for `uvicorn bench.http.apps:create --factory`. Each
configuration runs in its own process, because sentry-sdk and OpenTelemetry patch global state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

CONFIGS = ("bare", "floor", "kansoku", "kansoku-no-access-log", "floor-span", "kansoku-full",
           "kansoku-full-store-all", "peers",
           "asgi-correlation-id", "structlog-access-log", "prometheus-fastapi-instrumentator",
           "opentelemetry-fastapi", "sentry-sdk")
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - structlog's access lines of the whole run go here


def bare() -> FastAPI:
    """A FastAPI app with one templated JSON endpoint."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "name": "widget"}

    return app


def with_kansoku(app: FastAPI, *, access_log: bool = True) -> FastAPI:
    """kansoku's middleware: request id, one JSON access-log line (stdout, as in production), RED metrics.

    `access_log=False` shows the middleware's own cost apart from the logging pipeline's.
    """
    from kansoku.logs import configure_logging
    from kansoku.runtime.asgi import KansokuMiddleware
    from kansoku.settings import load_settings
    from kansoku.testing import MetricsRuntime

    # The parts of a runtime the middleware uses, without store, tracing or dashboard.
    runtime = MetricsRuntime(load_settings(log_format="json", stdlib_logging=False, access_log=access_log))
    configure_logging(runtime.settings)  # stdout: the bench sends it to /dev/null
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    return app


def with_floor(app: FastAPI, *, span: bool = False) -> FastAPI:
    """The yardstick of floor.py: the same per-request work in the plainest code, no features."""
    from bench.http.floor import FloorMiddleware

    app.add_middleware(FloorMiddleware, span=span)
    return app


def with_correlation_id(app: FastAPI) -> FastAPI:
    """asgi-correlation-id: accept or make X-Request-ID, echo it, expose it in a contextvar."""
    from asgi_correlation_id import CorrelationIdMiddleware

    app.add_middleware(CorrelationIdMiddleware)
    return app


def with_structlog_access_log(app: FastAPI) -> FastAPI:
    """The usual structlog recipe: an `@app.middleware("http")` that writes one JSON line per request."""
    import structlog
    from asgi_correlation_id import correlation_id
    from starlette.requests import Request
    from starlette.responses import Response

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=DEVNULL),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("access")

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Any]) -> Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=correlation_id.get())
        started = time.perf_counter_ns()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        client = request.client
        log.info("request", method=request.method, path=request.url.path,
                 route=getattr(route, "path", None), status=response.status_code,
                 duration_ms=(time.perf_counter_ns() - started) / 1e6,
                 client=client.host if client else None, user_agent=request.headers.get("user-agent"))
        return response

    return app


def with_instrumentator(app: FastAPI) -> FastAPI:
    """prometheus-fastapi-instrumentator with its defaults (own registry)."""
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


def with_opentelemetry(app: FastAPI) -> FastAPI:
    """OpenTelemetry's FastAPI instrumentation, an SDK tracer provider, a batch processor, no network."""
    from collections.abc import Sequence

    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


def with_sentry(app: FastAPI) -> FastAPI:
    """sentry-sdk with its default integrations (Starlette, FastAPI) and a DSN to a closed local port."""
    import sentry_sdk

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", default_integrations=True)
    return app


def with_kansoku_full(app: FastAPI, *, store_rate: float | None = None) -> FastAPI:
    """The whole of kansoku through `instrument()`: request id, access log, metrics, a span per
    request at 100% sampling, the error hook, the dashboard. Spans go to the SQLite store within
    its default budget (50 traces/s per process; failed and slow ones always kept); `store_rate=0`
    stores every span."""
    import tempfile

    import kansoku

    # BENCH_DATABASE_URL: a store made beforehand (bench/startup: one that is up to date).
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp(prefix='kansoku-bench-')}/kansoku.db"
    extra = {} if store_rate is None else {"trace_store_rate": store_rate}
    kansoku.instrument(app, database_url=url, log_format="json",
                       trace_level=os.environ.get("BENCH_TRACE_LEVEL", "PERFORMANCE"), trace_sample_rate=1.0,
                       store_spans=os.environ.get("BENCH_STORE_SPANS", "1") == "1", **extra)
    return app


def build(name: str) -> FastAPI:
    """The app of configuration `name` (one of CONFIGS)."""
    if name == "sentry-sdk":
        return with_sentry(bare())  # sentry patches FastAPI when initialised: before the app is made
    if name == "peers":
        import sentry_sdk

        sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", default_integrations=True)
        app = with_opentelemetry(bare())
        app = with_instrumentator(app)
        app = with_structlog_access_log(app)
        return with_correlation_id(app)  # outermost, so the access log sees the id
    steps: dict[str, Callable[[FastAPI], FastAPI]] = {
        "bare": lambda app: app,
        "floor": with_floor,
        "floor-span": lambda app: with_floor(app, span=True),
        "kansoku": with_kansoku,
        "kansoku-no-access-log": lambda app: with_kansoku(app, access_log=False),
        "kansoku-full": with_kansoku_full,
        "kansoku-full-store-all": lambda app: with_kansoku_full(app, store_rate=0),
        "asgi-correlation-id": with_correlation_id,
        "structlog-access-log": with_structlog_access_log,
        "prometheus-fastapi-instrumentator": with_instrumentator,
        "opentelemetry-fastapi": with_opentelemetry,
    }
    return steps[name](bare())


def create() -> FastAPI:
    """uvicorn factory: the configuration named by BENCH_CONFIG."""
    return build(os.environ.get("BENCH_CONFIG", "bare"))
