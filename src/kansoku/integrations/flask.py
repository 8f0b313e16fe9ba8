"""Flask: the URL rule as the route, and the failures Flask renders as its 500 page.

Changed in place, so `kansoku.instrument(app)` works with or without using its result: the
WSGI middleware goes in as `app.wsgi_app` (Flask's own place for WSGI middleware), so Flask's
request context and `g` are those of the request kansoku observes. Two of Flask's signals, for
this app only:

- `request_started`: the matched rule, blueprint prefix included (`/shop/items/<int:item_id>`),
  becomes the route `/shop/items/{item_id}`;
- `got_request_exception`: the exception Flask is about to turn into its 500 page is captured
  with its traceback, the request, and the endpoint and blueprint as tags. The page itself is
  Flask's, unchanged (and with `PROPAGATE_EXCEPTIONS`, the middleware answers the JSON 500).
"""

from __future__ import annotations

from typing import Any

import flask

from kansoku.integrations import braces
from kansoku.runtime import capture_exception, set_route
from kansoku.runtime.wsgi import KansokuWSGIMiddleware

__all__ = ["instrument", "instrumented"]


def instrumented(app: flask.Flask) -> bool:
    """Whether `instrument()` ran on this app already."""
    return isinstance(app.wsgi_app, KansokuWSGIMiddleware)


def instrument(app: flask.Flask, runtime: Any) -> flask.Flask:
    """Wrap the app's `wsgi_app` and connect the two signals (in place)."""
    app.wsgi_app = KansokuWSGIMiddleware(app.wsgi_app, runtime=runtime)  # type: ignore[method-assign]
    flask.request_started.connect(_route, app)
    flask.got_request_exception.connect(_failed, app)
    return app


def _route(sender: flask.Flask, **extra: Any) -> None:
    """The rule Flask matched for this request (none for a 404 or 405)."""
    rule = flask.request.url_rule
    if rule is not None:
        set_route(braces(rule.rule))


def _failed(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
    """An exception of a view (or a hook) that Flask handles as a 500."""
    request = flask.request
    tags = {"flask.endpoint": request.endpoint or "", "flask.blueprint": request.blueprint or ""}
    capture_exception(exception, mechanism="flask", handled=False,
                      tags={name: value for name, value in tags.items() if value})
