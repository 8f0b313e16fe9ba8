"""Seams for testing code that uses kansoku (and kansoku itself), shipped with the package.

- `capture_logs()`: the event dicts your code logs, after redaction, instead of output lines.
- `isolated_runtime(tmp_path, **settings)`: a runtime on a throwaway SQLite store, strict mode on,
  closed afterwards.
- `MetricsRuntime(settings)`: what `KansokuMiddleware` needs of a runtime, made of the real
  metrics parts only (no store, tracing or dashboard), for tests and benchmarks of the middleware.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from kansoku import runtime as _runtime
from kansoku.logs._logger import _STATE as _LOG_STATE
from kansoku.metrics import HttpMetrics, RequestStats
from kansoku.runtime.endpoints import Readiness
from kansoku.settings import Settings
from kansoku.typing import ASGIApp, EventDict

__all__ = ["MetricsRuntime", "capture_logs", "isolated_runtime"]


@contextmanager
def capture_logs() -> Iterator[list[EventDict]]:
    """Collect every record written through kansoku's pipeline (redacted), writing nothing."""
    captured: list[EventDict] = []

    def collect(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    processors, hooks = _LOG_STATE.processors, _LOG_STATE.hooks
    saved, saved_hooks = list(processors), list(hooks)
    processors[:] = [*saved[:-1], collect]  # everything but the renderer
    try:
        yield captured
    finally:
        processors[:], hooks[:] = saved, saved_hooks


@contextmanager
def isolated_runtime(directory: Path, **overrides: Any) -> Iterator[_runtime.Runtime]:
    """A runtime on a SQLite store inside `directory`, strict, made current for the block."""
    overrides.setdefault("database_url", f"sqlite:///{directory / 'kansoku.db'}")
    overrides.setdefault("strict", True)
    overrides.setdefault("log_format", "json")
    runtime = _runtime.setup(**overrides)
    try:
        yield runtime
    finally:
        _runtime.shutdown(5.0)


class MetricsRuntime:
    """The runtime attributes `KansokuMiddleware` reads, wired as the real runtime wires them, with
    no store, tracer or dashboard. Subclasses override `capture_exception`, `start` and `stop` to
    see what the middleware hands over."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.request_stats = RequestStats(settings.service, settings.latency_buckets)
        self.http_metrics = HttpMetrics(self.registry, settings, stats=self.request_stats)
        self.readiness = Readiness()
        self.request_tracer: Any = None
        self.web_app: ASGIApp | None = None

    def capture_exception(self, exc: BaseException, **kwargs: Any) -> str:
        """No error tracker: an empty id (the middleware then makes one for the 500 body)."""
        return ""

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""
