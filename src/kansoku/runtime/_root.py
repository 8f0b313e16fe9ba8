"""The composition root: `Runtime`, one configured instance of every part, wired together once.

`setup()` builds it from `Settings` (once per process) and `current()` returns it. Each part gets
what it needs from here when the runtime builds it (the registry, the logging hooks, the error
tracker's listeners); no part looks the runtime up. This module imports neither middleware:
they (`asgi`, `wsgi`) import it, to set a runtime up when they are given none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from kansoku import _safety
from kansoku.context import propagate_to_threads
from kansoku.logs import configure_logging, get_logger
from kansoku.logs import flush as flush_logs
from kansoku.settings import Settings, load_settings
from kansoku.typing import ASGIApp, ErrorProcessor, RequestInfo

__all__ = ["PERIODIC_SECONDS", "Runtime", "add_error_processor", "current", "setup", "shutdown"]

_log = get_logger("kansoku")
_current: Runtime | None = None
_error_processors: list[ErrorProcessor] = []
PERIODIC_SECONDS = 10.0


class Runtime:
    """Every part of kansoku, configured from one `Settings`."""

    def __init__(self, settings: Settings, *, service: str | None = None) -> None:
        from kansoku import tracing
        from kansoku.debug import Debugger
        from kansoku.errors import ErrorTracker
        from kansoku.errors.collector import ErrorCollector
        from kansoku.metrics import HttpMetrics, RequestStats, adopt_early_metrics, make_registry, use_defaults
        from kansoku.runtime.endpoints import Readiness

        if service and not settings.service_name:
            settings = settings.model_copy(update={"service_name": service})
        self.settings = settings
        self.service = settings.service
        self._tasks: list[asyncio.Task[None]] = []
        self._uninstall_hooks: Callable[[], None] | None = None
        self.started = False
        if settings.strict:
            _safety.set_strict(True)
        if settings.propagate_context_to_threads:
            propagate_to_threads()
        self.registry: CollectorRegistry = make_registry(settings)
        use_defaults(self.registry, slow_ms=settings.slow_threshold_ms)
        self.readiness = Readiness()
        self.request_stats = RequestStats(self.service, settings.latency_buckets)
        self.http_metrics = HttpMetrics(self.registry, settings, stats=self.request_stats)
        self.store = _open_store(settings, self.readiness)
        self.engine = self.store.engine if self.store is not None else None
        self.debugger = Debugger(settings)
        self.errors = ErrorTracker(settings, self.engine, processors=_error_processors)
        self.readiness.register("errors", self.errors.problem)
        self.registry.register(ErrorCollector(self.errors))
        self.tracer_provider = None
        self.request_tracer = None
        if settings.trace_level != "DISABLED" and not settings.sdk_disabled:
            self.tracer_provider = tracing.configure_tracing(settings, self.engine, self.service, set_global=True,
                                                            registry=self.registry)
            self.request_tracer = tracing.RequestTracer(self.tracer_provider, settings)
        # No capture hook for `traced`: its snapshot rides on the exception (debug.snapshot_of) and
        # joins the event when the middleware or track_errors captures it, with the request info.
        tracing.configure(settings, self.tracer_provider, debugger=self.debugger)
        _configure_jobs(self)
        _configure_monitors(self)
        self.alerts, self.dispatcher = _alerting(settings, self.engine, self.errors)
        self.metrics_mirror = _metrics_mirror(self.registry)
        self.readiness.register("exports", _exports_problem, informational=True)
        self.log_keeper = _log_keeper(settings, self.engine, self.registry)
        hooks = [tracing.add_trace_ids, self.errors.breadcrumb_processor, self.errors.log_processor]
        self.otlp_logs = _otlp_logs(settings, self.service)
        configure_logging(settings, hooks=hooks, service=self.service, keep=self.log_keeper,
                          sinks=[self.otlp_logs] if self.otlp_logs is not None else [])
        for name in adopt_early_metrics(self.registry):  # made at import time, before instrument()
            _log.warning("a metric made before instrument() has the name of one of kansoku's own: not served",
                         metric=name)
        self._web_app: ASGIApp | None = None
        self._web_lock = threading.Lock()

    @property
    def web_app(self) -> ASGIApp | None:
        """The dashboard and JSON API (None when `dashboard` is off), built on first use: its
        imports (Jinja2, the pages, the API) are not what the first request of the app needs."""
        if self._web_app is None and self.settings.dashboard:
            with self._web_lock:
                if self._web_app is None:
                    from kansoku.web.app import build_web_app

                    self._web_app = build_web_app(self)
        return self._web_app

    def capture_exception(
        self, exc: BaseException, *, request: RequestInfo | None = None, mechanism: str = "manual",
        handled: bool = True, **context: Any,
    ) -> str:
        """Record an exception as an error event; returns its id (never raises)."""
        return self.errors.capture(exc, request=request, mechanism=mechanism, handled=handled, **context)

    async def start(self) -> None:
        """Start background work (alert delivery, periodic flushes). Called on lifespan startup."""
        if self.started:
            return
        self.started = True
        from kansoku.errors import install_hooks

        self._uninstall_hooks = install_hooks(self.errors, loop=asyncio.get_running_loop())
        self.errors.start()
        self.debugger.start()
        if self.metrics_mirror is not None:
            self.metrics_mirror.start()
        self._tasks.append(asyncio.create_task(self._periodic(), name="kansoku-periodic"))
        if self.dispatcher is not None and self.settings.alert_dispatcher:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="kansoku-dispatcher"))
        _log.info("kansoku started", service=self.service, store=_safe_url(self.settings.database_url),
                  dashboard=self.settings.route_prefix if self.settings.dashboard else None,
                  dashboard_access="token" if self.settings.dashboard_token else "loopback clients only")

    async def stop(self, flush_seconds: float = 10.0) -> None:
        """Flush everything accepted and stop background work. Called on lifespan shutdown."""
        if self.dispatcher is not None:
            with _safety.suppress_internal_errors("dispatcher.stop"):
                self.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.close, flush_seconds)
        self.started = False

    def close(self, timeout: float = 10.0) -> None:
        """Synchronous flush of every part (also used at interpreter exit and by SIGTERM paths)."""
        with _safety.suppress_internal_errors("close.request-stats"):
            if self.engine is not None:
                self.request_stats.flush(self.engine)
        with _safety.suppress_internal_errors("close.errors"):
            self.errors.close(timeout)
        if self.tracer_provider is not None:
            with _safety.suppress_internal_errors("close.tracing"):
                self.tracer_provider.force_flush(int(timeout * 1000))
        with _safety.suppress_internal_errors("close.debugger"):
            self.debugger.close(timeout)
        if self.metrics_mirror is not None:
            with _safety.suppress_internal_errors("close.metrics-mirror"):
                self.metrics_mirror.stop()
        flush_logs()
        if self.otlp_logs is not None:
            with _safety.suppress_internal_errors("close.otlp-logs"):
                self.otlp_logs.flush(int(timeout * 1000))
        if self.log_keeper is not None:
            with _safety.suppress_internal_errors("close.log-store"):
                self.log_keeper.flush()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Flush, then release what this runtime installed process-wide (hooks, instrumentors)."""
        from kansoku import jobs, monitors, tracing
        from kansoku.metrics import use_defaults

        self.close(timeout)
        if self.log_keeper is not None:
            from kansoku.logs import stop_keeping

            stop_keeping(self.log_keeper)
            self.log_keeper.close()
        if self._uninstall_hooks is not None:
            self._uninstall_hooks()
            self._uninstall_hooks = None
        if self.otlp_logs is not None:
            with _safety.suppress_internal_errors("shutdown.otlp-logs"):
                self.otlp_logs.shutdown()
        if self.tracer_provider is not None:
            with _safety.suppress_internal_errors("shutdown.tracing"):
                tracing.uninstrument_libraries()
                self.tracer_provider.shutdown()
        tracing.reset()
        jobs.reset()
        monitors.reset()
        use_defaults()

    async def _periodic(self) -> None:
        """Every few seconds: request statistics to the store, HTTP alert rules, retention."""
        last_retention = 0.0
        while True:
            await asyncio.sleep(PERIODIC_SECONDS)
            await asyncio.to_thread(self._tick, time.time() - last_retention > 3600)
            if time.time() - last_retention > 3600:
                last_retention = time.time()

    def _tick(self, retention: bool) -> None:
        if self.engine is None:
            return
        with _safety.suppress_internal_errors("periodic.request-stats"):
            self.request_stats.flush(self.engine)
        if self.alerts is not None:
            with _safety.suppress_internal_errors("periodic.alerts"):
                self.alerts.evaluate_http_rules()
        if retention:
            from kansoku.store.queries import enforce_retention

            with _safety.suppress_internal_errors("periodic.retention"):
                enforce_retention(self.engine, days=self.settings.retention_days,
                                  max_events_per_group=self.settings.max_events_per_group)


def _otlp_logs(settings: Settings, service: str) -> Any:
    """The OTLP log export (a log sink) when configured, else None."""
    from kansoku.logs._otlp import OtlpLogs, logs_target

    enabled, url = logs_target(settings)
    if not enabled:
        return None
    from kansoku.tracing import build_resource

    return OtlpLogs(url, build_resource(settings, service))


def _exports_problem() -> str | None:
    """What kansoku cannot send now (Sentry, the OTLP collector): informational on /ready."""
    from kansoku._outage import live_links

    problems = sorted(problem for link in live_links() if (problem := link.problem()) is not None)
    return "; ".join(problems) or None


def _metrics_mirror(registry: CollectorRegistry) -> Any:
    """In multi-process mode, the copier of this worker's per-process metrics into the shared files."""
    from kansoku.metrics import _multiprocess
    from kansoku.metrics._system import SystemCollector

    if not _multiprocess.enabled():
        return None
    mirror = _multiprocess.Mirror.of_registry(registry, skip=(SystemCollector,))  # the machine: read at scrape
    mirror.collectors.append(SystemCollector(machine=False, process_fds=not os.path.exists("/proc/self/stat")))
    return mirror


def _open_store(settings: Settings, readiness: Any) -> Any:
    """Open (and on SQLite, migrate) the store; on failure report it and run without one."""
    from kansoku.store import Store

    try:
        store = Store.open(settings)
    except Exception as exc:
        if settings.strict:
            raise
        _safety.report_internal_error("store.open", exc)
        _log.error("kansoku store unavailable; errors are logged but not stored",
                   store=_safe_url(settings.database_url), error=str(exc))
        message = f"store unavailable: {exc}"
        readiness.register("store", lambda: message)
        return None
    readiness.register("store", store.ping)
    return store


def _configure_monitors(runtime: Runtime) -> None:
    """`kansoku.monitor` check-ins go to this runtime's store, with the monitors of kansoku.toml."""
    from kansoku import monitors

    monitors.configure(runtime.engine, monitors.parse_monitors(runtime.settings.monitors))


def _configure_jobs(runtime: Runtime) -> None:
    """Job runs (`kansoku.job`, Celery tasks) get this runtime's spans, registry and error tracker."""
    from kansoku import jobs
    from kansoku.tracing import LightTracer

    provider = runtime.tracer_provider
    tracer = LightTracer(provider, "kansoku.jobs", redactor=runtime.errors.redactor) if provider else None
    jobs.configure(tracer=tracer if tracer is not None and tracer.enabled else None,
                   capture=runtime.capture_exception, level=runtime.settings.trace_level,
                   redactor=runtime.errors.redactor, registry=runtime.registry)


def _log_keeper(settings: Settings, engine: Any, registry: CollectorRegistry) -> Any:
    """The log store's keeper (with its counters on /metrics), or None: no store, or not wanted."""
    if engine is None or not settings.store_logs:
        return None
    from kansoku.logs import LogStoreCollector, keeper_for
    from kansoku.store.logs import write_logs

    keeper = keeper_for(settings, functools.partial(write_logs, engine))
    registry.register(LogStoreCollector(keeper))
    return keeper


def _alerting(settings: Settings, engine: Any, errors: Any) -> tuple[Any, Any]:
    if engine is None:
        return None, None
    from kansoku.alerts import AlertEngine, Dispatcher

    alerts = AlertEngine(settings, engine)
    errors.add_listener(alerts.on_error)
    return alerts, Dispatcher(settings, engine, alert_engine=alerts)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable url>"


# --- module-level API -------------------------------------------------------------------------------


def current() -> Runtime | None:
    """The runtime `instrument()` or `setup()` built, or None."""
    return _current


def setup(settings: Settings | None = None, *, service: str | None = None, **overrides: Any) -> Runtime:
    """Build the runtime (once per process; a second call with nothing new returns the first)."""
    global _current
    if _current is not None and settings is None and not overrides:
        return _current
    settings = settings or load_settings(**overrides)
    if _current is not None:
        with _safety.suppress_internal_errors("runtime.replace"):
            _current.shutdown(2.0)
    _current = Runtime(settings, service=service)
    return _current


def shutdown(timeout: float = 10.0) -> None:
    """Flush and forget the current runtime (tests, scripts without a lifespan)."""
    global _current
    if _current is not None:
        _current.shutdown(timeout)
        _current = None


def add_error_processor(processor: ErrorProcessor) -> None:
    """Run `processor` on every error event before it is stored or sent; return None to drop it."""
    _error_processors.append(processor)
