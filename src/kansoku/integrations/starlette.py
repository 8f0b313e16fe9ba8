"""Starlette and FastAPI: kansoku's middleware added to the app's own stack, in place.

Starlette names the matched route in `scope["route"]`, which the middleware reads by default,
mounted apps included. FastAPI's own telemetry (its server span and three operation spans) is
turned off when kansoku traces, since kansoku's server span replaces it.
"""

from __future__ import annotations

from typing import Any

from kansoku.runtime.asgi import KansokuMiddleware

__all__ = ["instrument", "instrumented"]


def instrumented(app: Any) -> bool:
    """Whether `instrument()` ran on this app already."""
    return getattr(getattr(app, "state", None), "kansoku", None) is not None


def instrument(app: Any, runtime: Any) -> Any:
    """Add the middleware to the app (changed in place, and returned)."""
    telemetry = getattr(app, "_telemetry", None)
    if isinstance(telemetry, dict) and runtime.request_tracer is not None:
        # FastAPI's native telemetry would open a second server span (and three more per
        # request) once kansoku sets the global tracer provider: kansoku's span replaces it.
        telemetry["tracing"] = False
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    app.state.kansoku = runtime
    return app
