"""The apps bench_wsgi.py measures: one trivial Flask endpoint, bare or behind an observability stack.

`build(name)` returns the WSGI app of one configuration; `create()` reads the name from the
BENCH_CONFIG environment variable, for `gunicorn 'bench.wsgi.apps:create()'`. Each configuration
runs in its own process, because sentry-sdk and OpenTelemetry patch global state.

The peer stack is what a Flask team uses today for the same pillars: sentry-sdk with its Flask
integration (errors, a DSN to a closed local port: nothing is sent while no error happens),
prometheus-flask-exporter (RED metrics) and OpenTelemetry's Flask instrumentation (an SDK tracer,
a batch processor, no network).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import flask

CONFIGS = ("bare", "kansoku", "kansoku-no-access-log", "kansoku-full", "peers", "prometheus-flask-exporter",
           "sentry-sdk-flask", "opentelemetry-flask")


def bare() -> flask.Flask:
    """A Flask app with one templated JSON endpoint."""
    app = flask.Flask(__name__)

    @app.get("/items/<int:item_id>")
    def read_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "name": "widget"}

    return app


def with_kansoku(app: flask.Flask, *, access_log: bool = True) -> Any:
    """kansoku's WSGI middleware and the Flask integration over the metrics parts of a runtime:
    request id, one JSON access line (stdout, as in production), RED metrics by route template.
    `access_log=False` shows the middleware's own cost apart from the logging pipeline's."""
    from kansoku.integrations import flask as integration
    from kansoku.logs import configure_logging
    from kansoku.settings import load_settings
    from kansoku.testing import MetricsRuntime

    runtime = MetricsRuntime(load_settings(log_format="json", stdlib_logging=False, access_log=access_log))
    configure_logging(runtime.settings)  # stdout: the bench sends it to /dev/null
    return integration.instrument(app, runtime)


def with_kansoku_full(app: flask.Flask) -> Any:
    """The whole of kansoku through `instrument()`: request id, access log, metrics, a span per request
    at 100% sampling (the SQLite store within its default budget), errors, the dashboard."""
    import kansoku

    directory = tempfile.mkdtemp(prefix="kansoku-bench-")
    return kansoku.instrument(app, database_url=f"sqlite:///{directory}/kansoku.db", log_format="json",
                              trace_sample_rate=1.0)


def with_prometheus_flask_exporter(app: flask.Flask) -> flask.Flask:
    """prometheus-flask-exporter with its defaults (its own registry)."""
    from prometheus_client import CollectorRegistry
    from prometheus_flask_exporter import PrometheusMetrics

    PrometheusMetrics(app, registry=CollectorRegistry())
    return app


def with_sentry(app: flask.Flask) -> flask.Flask:
    """sentry-sdk with its Flask integration (and its other defaults), a DSN to a closed local port."""
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", integrations=[FlaskIntegration()])
    return app


def with_opentelemetry(app: flask.Flask) -> flask.Flask:
    """OpenTelemetry's Flask instrumentation, an SDK tracer provider, a batch processor, no network."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    return app


def build(name: str) -> Any:
    """The WSGI app of configuration `name` (one of CONFIGS)."""
    if name == "peers":
        return with_opentelemetry(with_prometheus_flask_exporter(with_sentry(bare())))
    steps: dict[str, Callable[[flask.Flask], Any]] = {
        "bare": lambda app: app,
        "kansoku": with_kansoku,
        "kansoku-no-access-log": lambda app: with_kansoku(app, access_log=False),
        "kansoku-full": with_kansoku_full,
        "prometheus-flask-exporter": with_prometheus_flask_exporter,
        "sentry-sdk-flask": with_sentry,
        "opentelemetry-flask": with_opentelemetry,
    }
    return steps[name](bare())


def create() -> Any:
    """gunicorn entry: the configuration named by BENCH_CONFIG."""
    return build(os.environ.get("BENCH_CONFIG", "bare"))
