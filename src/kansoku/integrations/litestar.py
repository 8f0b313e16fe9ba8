"""Litestar: the route handler's path template, and the failures Litestar renders itself.

Changed in place, so `kansoku.instrument(app)` works with or without using its result:
kansoku's middleware goes around the app's own stack (`app.asgi_handler`), the runtime starts and
stops with the app's startup and shutdown hooks, and an exception hook (`after_exception`)
captures every exception Litestar turns into a 5xx response, with its traceback and the
request, before Litestar renders its error page (which is left as it is). Client errors
(`HTTPException` below 500: 404, validation) are answers, not failures.

The route is Litestar's `scope["path_template"]` (`/items/{item_id:int}`) without the parameter
types: `/items/{item_id}`.
"""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException
from litestar.utils import ensure_async_callable

from kansoku.integrations import braces
from kansoku.metrics._http import UNMATCHED
from kansoku.runtime import capture_exception
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.typing import Scope

__all__ = ["instrument", "instrumented", "route_of"]


def instrumented(app: Any) -> bool:
    """Whether `instrument()` ran on this app already."""
    return isinstance(app.asgi_handler, KansokuMiddleware)


def instrument(app: Any, runtime: Any) -> Any:
    """Put kansoku around the app's handler, hook its failures and its lifespan (in place)."""
    app.asgi_handler = KansokuMiddleware(app.asgi_handler, runtime=runtime, route_of=route_of)
    app.after_exception.append(ensure_async_callable(_after_exception))
    app.on_startup.append(runtime.start)
    app.on_shutdown.insert(0, runtime.stop)  # run in reverse order: kansoku stops last
    return app


def route_of(scope: Scope, root_path: str) -> str:
    """The template of the route Litestar matched, in kansoku's form; UNMATCHED before routing."""
    template = scope.get("path_template")
    return braces(template) if isinstance(template, str) and template else UNMATCHED


def _after_exception(exc: Exception, scope: Scope) -> None:
    """Litestar's exception hook: a server failure becomes the request's error event."""
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return
    capture_exception(exc, mechanism="litestar", handled=False)
