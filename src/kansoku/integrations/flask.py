"""Flask: the URL rule as the route, and the failures Flask renders as its 500 page.

Changed in place, so `kansoku.instrument(app)` works with or without using its result: the
WSGI middleware goes in as `app.wsgi_app` (Flask's own place for WSGI middleware), so Flask's
request context and `g` are those of the request kansoku observes.

- The route: the rule Flask matched, blueprint prefix included (`/shop/items/<int:item_id>`), is
  the route `/shop/items/{item_id}` (converted once per rule). It is read from the request
  Werkzeug keeps in the environ (`werkzeug.request`) when Flask starts its response, before Flask
  lets go of it, so it costs nothing while the view runs (a signal would cost a dispatch).
- Failures: `got_request_exception` (for this app only): the exception Flask is about to turn
  into its 500 page is captured with its traceback, the request, and the endpoint and blueprint
  as tags. The page itself is Flask's, unchanged (and with `PROPAGATE_EXCEPTIONS`, the
  middleware answers the JSON 500).
"""

from __future__ import annotations

from typing import Any

import flask

from kansoku.integrations import braces
from kansoku.runtime import capture_exception
from kansoku.runtime.wsgi import KansokuWSGIMiddleware

__all__ = ["instrument", "instrumented", "route_of"]


def instrumented(app: flask.Flask) -> bool:
    """Whether `instrument()` ran on this app already."""
    return isinstance(app.wsgi_app, KansokuWSGIMiddleware)


def instrument(app: flask.Flask, runtime: Any) -> flask.Flask:
    """Wrap the app's `wsgi_app` and connect the two signals (in place)."""
    app.wsgi_app = KansokuWSGIMiddleware(app.wsgi_app, runtime=runtime,  # type: ignore[method-assign]
                                         route_of=route_of)
    flask.got_request_exception.connect(_failed, app)
    return app


def route_of(environ: dict[str, Any]) -> str | None:
    """The template of the rule Flask matched for the request of `environ`; None for a 404 or 405."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    if rule is None:
        return None
    template = _TEMPLATES.get(rule.rule)
    if template is None:
        template = _TEMPLATES[rule.rule] = braces(rule.rule)  # bounded: the app's own rules
    return template


_TEMPLATES: dict[str, str] = {}


def _failed(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
    """An exception of a view (or a hook) that Flask handles as a 500."""
    request = flask.request
    tags = {"flask.endpoint": request.endpoint or "", "flask.blueprint": request.blueprint or ""}
    capture_exception(exception, mechanism="flask", handled=False,
                      tags={name: value for name, value in tags.items() if value})
