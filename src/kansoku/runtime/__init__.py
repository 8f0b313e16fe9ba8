"""The runtime: the entry points where kansoku meets an app, and the composition root.

`instrument(app)` builds the runtime (through `setup()`, in `_root`), puts kansoku's middleware
in front of the app, and lets the middleware start and stop it with the app's lifespan. The
public helpers (`capture_exception`, `track_errors`, ...) find it with `current()`. The
middlewares live in `asgi` and `wsgi`, what they share per request in `_exchange`, kansoku's own
endpoints in `endpoints`, the app loader of `kansoku run` in `load`.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from kansoku import _safety
from kansoku._delegate import around
from kansoku.logs import get_logger
from kansoku.runtime._exchange import CURRENT, set_route
from kansoku.runtime._root import Runtime, add_error_processor, current, setup, shutdown

__all__ = [
    "Runtime",
    "add_error_processor",
    "capture_exception",
    "current",
    "instrument",
    "instrument_celery",
    "serve_metrics",
    "set_route",
    "setup",
    "shutdown",
    "track_errors",
]

P = ParamSpec("P")
R = TypeVar("R")

_log = get_logger("kansoku")


def instrument(app: Any, **overrides: Any) -> Any:
    """Instrument an ASGI or WSGI app: middleware, /metrics, /health, /ready, dashboard and API.

    Write `app = kansoku.instrument(app)`: FastAPI, Starlette, Flask and Litestar apps are changed
    in place (and returned); Django's handlers and any other ASGI or WSGI callable are returned
    wrapped, and a wrapped app whose result is dropped is reported at once. The integration of
    the app's framework (`kansoku.integrations`) adds its route templates and the failures it
    renders itself. An object that is neither ASGI nor WSGI raises TypeError naming it. A second
    call on the same app returns it unchanged.
    """
    from kansoku import integrations
    from kansoku.runtime.asgi import KansokuMiddleware
    from kansoku.runtime.wsgi import KansokuWSGIMiddleware

    integration = integrations.find(app)
    if isinstance(app, KansokuMiddleware | KansokuWSGIMiddleware) or (
            integration is not None and integration.instrumented(app)):
        return app
    interface = integrations.interface_of(app)  # raises for anything else, before any setup
    title = getattr(app, "title", None)
    title = title if isinstance(title, str) else None
    service = None if overrides.get("service_name") else (title if title and title != "FastAPI" else None)
    running = current()
    runtime = setup(service=service, **overrides) if overrides or running is None else running
    _instrument_celery_apps()
    if integration is not None:
        result = integration.instrument(app, runtime)
    elif interface == "asgi":
        result = KansokuMiddleware(app, runtime=runtime)
    else:
        result = KansokuWSGIMiddleware(app, runtime=runtime)
    if result is not app:
        _report_if_dropped(result, app)
    return result


def _instrument_celery_apps() -> None:
    """A Celery app made in this process (the web app enqueues tasks) gets its tasks traced too."""
    import sys

    if "celery" not in sys.modules:
        return
    from celery import _state

    apps = [app for app in list(_state._get_active_apps()) if app is not _state.default_app]
    if apps:
        from kansoku.integrations import celery

        for app in apps:
            celery.instrument(app, current())


def instrument_celery(app: Any, **overrides: Any) -> Any:
    """Trace, measure and capture the tasks of a Celery app (`kansoku.integrations.celery`); returns it.

    Builds the runtime if none exists (`overrides` as for `setup`), so a worker module needs only
    this call; in a web app, `instrument()` does it for the Celery apps it finds.
    """
    from kansoku.integrations import celery

    running = current()
    return celery.instrument(app, setup(**overrides) if overrides or running is None else running)


def serve_metrics(port: int | None = None, host: str | None = None) -> Any:
    """Serve `/metrics` and `/health` from a process with no web app (a worker); returns the server.

    Default port and host: the `worker_metrics_port` and `worker_metrics_host` settings (port 0
    picks a free one: `server.server_port`); `server.shutdown()` stops it. Builds the runtime if
    none exists.
    """
    from kansoku.runtime.metrics_server import serve

    return serve(current() or setup(), port, host)


def _report_if_dropped(wrapper: Any, app: Any) -> None:
    """Say so when the wrapper `instrument()` returned is dropped unused (`kansoku.instrument(app)`
    instead of `app = kansoku.instrument(app)`): the app would serve with no kansoku at all."""
    name = f"{type(app).__module__}.{type(app).__qualname__}"

    def dropped() -> None:
        message = (f"kansoku.instrument() wrapped a {name} and the result was dropped, so kansoku observes "
                   "nothing: write `app = kansoku.instrument(app)` and serve the result")
        _log.error(message)
        import sys

        print(f"kansoku: {message}", file=sys.stderr, flush=True)

    finalizer = weakref.finalize(wrapper, dropped)
    finalizer.atexit = False  # dropped at exit is not dropped
    wrapper.served = finalizer.detach  # the first request (or lifespan) detaches it


def capture_exception(exc: BaseException | None = None, **context: Any) -> str:
    """Record an exception (default: the one being handled); returns the event id.

    Inside a request, the event carries the request (method, route template, path, client) and
    the request's span records the error if it answers 5xx; the request then makes no second
    event for its 5xx. This is how a framework adapter reports a failure the framework renders
    as an error page itself. Without `instrument()` the error is only logged (with the id).
    """
    if exc is None:
        import sys

        exc = sys.exc_info()[1]
        if exc is None:
            raise ValueError("capture_exception() needs an exception, or to be called inside an except block")
    exchange = CURRENT.get()
    if exchange is not None and "request" not in context:
        context.setdefault("mechanism", "manual")
        context.setdefault("handled", True)
        return exchange.recorder.capture(exchange, exc, **context)
    runtime = current()
    if runtime is not None:
        return runtime.capture_exception(exc, **context)
    event_id = uuid.uuid4().hex
    _log.error("exception captured (kansoku not instrumented: not stored)", exc_info=exc,
               event_id=event_id, **context)
    return event_id


def track_errors(
    category: str | None = None, *, severity: str | None = None, **tags: Any
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record exceptions raised by the function with this category, then re-raise.

    Works on functions, coroutine functions, generator and async generator functions (an exception
    raised while a generator is iterated is recorded too).
    """

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        def finish(exc: BaseException | None) -> None:
            if isinstance(exc, Exception):
                with _safety.suppress_internal_errors("track_errors"):
                    capture_exception(exc, category=category, severity=severity, mechanism="track_errors",
                                      handled=False, function=func.__qualname__, tags=tags or None)

        return around(func, lambda: finish)

    return decorator
