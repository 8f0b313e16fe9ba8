"""Framework integrations: what kansoku learns from the framework that made the app.

One module per framework (sentry-python's shape), each switched on by `kansoku.instrument(app)`
(and so by `kansoku run`) when it recognises the app, and each imported only then: the class of
the app is looked up by name, so no framework is imported to find out. An integration adds what
only the framework knows, on top of the one ASGI or WSGI middleware:

- the route template, in one form for every framework: `/items/{item_id}` (the path as
  declared, parameters in braces without their types or converters, a leading slash, a trailing
  slash only where the route has one, mount or blueprint prefixes included);
- the failures the framework turns into a 500 page itself, captured with their traceback and
  the request (the response is not changed);
- what else it knows: the user (Django), the endpoint and blueprint (Flask), its loggers.

Another framework needs two calls, `kansoku.set_route(template)` where it has matched the route
and `kansoku.capture_exception(exc)` where it renders a failure (docs/frameworks/other.md).
"""

from __future__ import annotations

import importlib
import inspect
import re
from types import ModuleType
from typing import Any, Final, Literal

__all__ = ["Interface", "braces", "find", "interface_of"]

Interface = Literal["asgi", "wsgi"]

# The classes each integration recognises (subclasses too), by "module.qualname": no import needed.
_KNOWN: Final[dict[str, tuple[str, Interface]]] = {
    "django.core.handlers.wsgi.WSGIHandler": ("django", "wsgi"),
    "django.core.handlers.asgi.ASGIHandler": ("django", "asgi"),
    "flask.app.Flask": ("flask", "wsgi"),
    "litestar.app.Litestar": ("litestar", "asgi"),
    "starlette.applications.Starlette": ("starlette", "asgi"),
}
_CONVERTER: Final = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")  # Django, Flask/Werkzeug: <int:item_id>, <slug>
_TYPED: Final = re.compile(r"\{([^{}:]+):[^{}]*\}")  # Litestar, Starlette: {item_id:int}


def _known(app: Any) -> tuple[str, Interface] | None:
    for cls in type(app).__mro__:
        found = _KNOWN.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return None


def find(app: Any) -> ModuleType | None:
    """The integration module for the framework that made `app`, or None."""
    known = _known(app)
    return None if known is None else importlib.import_module(f"kansoku.integrations.{known[0]}")


def interface_of(app: Any) -> Interface:
    """Whether `app` is an ASGI or a WSGI application; TypeError naming the object otherwise.

    Known frameworks by their class; any other callable by its call: a coroutine function of
    (scope, receive, send) is ASGI, a function of (environ, start_response) is WSGI.
    """
    known = _known(app)
    if known is not None:
        return known[1]
    if callable(app) and not isinstance(app, type):
        call = app if inspect.isroutine(app) else type(app).__call__  # the instance's own call
        if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call):
            return "asgi"
        try:
            parameters = list(inspect.signature(app).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) == 2 and not inspect.isasyncgenfunction(app):
            return "wsgi"
    raise TypeError(
        f"kansoku.instrument() takes an ASGI or a WSGI application, and {_describe(app)} is neither: an ASGI app "
        "is `async def app(scope, receive, send)`, a WSGI app is `def app(environ, start_response)` (Django's "
        "get_asgi_application() / get_wsgi_application(), a Flask, FastAPI, Starlette or Litestar app)"
    )


def braces(route: str) -> str:
    """A framework's route as kansoku's one form: `items/<int:item_id>/` -> `/items/{item_id}/`."""
    template = _TYPED.sub(r"{\1}", _CONVERTER.sub(r"{\1}", route))
    return template if template.startswith("/") else "/" + template


def _describe(app: Any) -> str:
    kind = type(app)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    shown = repr(app)
    return f"{shown} ({article} {name})" if len(shown) <= 80 else f"{article} {name}"
