"""kansoku (観測): observability for Python web services in one package.

Structured logs, Prometheus metrics, OpenTelemetry traces, error tracking and alerting, and a
built-in dashboard, from one call::

    import kansoku
    app = kansoku.instrument(app)       # FastAPI, Starlette, Django, Flask, Litestar, any ASGI or WSGI app

The names below are re-exported lazily, so that `import kansoku` (and the CLI) stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported eagerly: the submodule `kansoku.context` would otherwise shadow the function `context`.
from kansoku._version import __version__
from kansoku.context import bind_context, context

if TYPE_CHECKING:
    from kansoku.debug import memory_profile, track_object
    from kansoku.jobs import job
    from kansoku.logs import get_logger, log_database_operation, log_execution_time
    from kansoku.metrics import (
        MetricConfig,
        counter,
        gauge,
        histogram,
        register_metric,
        summary,
        timed,
        track_business_metric,
    )
    from kansoku.monitors import monitor
    from kansoku.runtime import (
        add_error_processor,
        capture_exception,
        instrument,
        instrument_celery,
        serve_metrics,
        set_route,
        setup,
        track_errors,
    )
    from kansoku.runtime.asgi import KansokuMiddleware
    from kansoku.runtime.wsgi import KansokuWSGIMiddleware
    from kansoku.settings import Settings, load_settings
    from kansoku.tracing import TraceLevel, instrument_engine, traced

__all__ = [
    "KansokuMiddleware",
    "KansokuWSGIMiddleware",
    "MetricConfig",
    "Settings",
    "TraceLevel",
    "__version__",
    "add_error_processor",
    "bind_context",
    "capture_exception",
    "context",
    "counter",
    "gauge",
    "get_logger",
    "histogram",
    "instrument",
    "instrument_celery",
    "instrument_engine",
    "job",
    "load_settings",
    "log_database_operation",
    "log_execution_time",
    "memory_profile",
    "monitor",
    "register_metric",
    "serve_metrics",
    "set_route",
    "setup",
    "summary",
    "timed",
    "traced",
    "track_business_metric",
    "track_errors",
    "track_object",
]

_LAZY = {
    "KansokuMiddleware": "kansoku.runtime.asgi",
    "KansokuWSGIMiddleware": "kansoku.runtime.wsgi",
    "MetricConfig": "kansoku.metrics",
    "Settings": "kansoku.settings",
    "TraceLevel": "kansoku.tracing",
    "add_error_processor": "kansoku.runtime",
    "capture_exception": "kansoku.runtime",
    "counter": "kansoku.metrics",
    "gauge": "kansoku.metrics",
    "get_logger": "kansoku.logs",
    "histogram": "kansoku.metrics",
    "instrument": "kansoku.runtime",
    "instrument_celery": "kansoku.runtime",
    "instrument_engine": "kansoku.tracing",
    "job": "kansoku.jobs",
    "load_settings": "kansoku.settings",
    "log_database_operation": "kansoku.logs",
    "log_execution_time": "kansoku.logs",
    "memory_profile": "kansoku.debug",
    "monitor": "kansoku.monitors",
    "register_metric": "kansoku.metrics",
    "serve_metrics": "kansoku.runtime",
    "set_route": "kansoku.runtime",
    "setup": "kansoku.runtime",
    "summary": "kansoku.metrics",
    "timed": "kansoku.metrics",
    "traced": "kansoku.tracing",
    "track_business_metric": "kansoku.metrics",
    "track_errors": "kansoku.runtime",
    "track_object": "kansoku.debug",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kansoku' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
