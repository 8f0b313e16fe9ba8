"""Django (ASGI and WSGI): the resolver's route, failures with the request and the user, its loggers.

`kansoku.instrument(application)` takes what `get_asgi_application()` or `get_wsgi_application()`
returned and gives it back wrapped in kansoku's ASGI or WSGI middleware; `kansoku run
mysite.asgi:application` does the same with no change to the project. The manual way is that one
line in `asgi.py` or `wsgi.py` (docs/frameworks/django.md). What the integration adds:

- The route: the handler's `resolve_request` (this handler's, not Django's class) names the
  route the resolver matched, includes joined: `path("items/<int:item_id>/")` under
  `path("shop/", include(...))` is `/shop/items/{item_id}/`; a `re_path` regex is shown the same
  way, its named groups in braces.
- Failures: Django's `got_request_exception` signal, sent for every exception that Django turns
  into its 500 page (or the technical 500 page in DEBUG), is captured with the traceback, the
  request and, when `django.contrib.auth` set `request.user`, the user's id and username. The
  page itself is Django's, unchanged.
- Logs: Django's loggers (`django`, `django.request`, `django.server`...) write through kansoku's
  pipeline; their console handlers are removed so that each record is written once. The
  `mail_admins` handler stays.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Final

from django.core import signals
from django.core.handlers.asgi import ASGIHandler

from kansoku.integrations import braces
from kansoku.runtime import capture_exception, set_route
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.runtime.wsgi import KansokuWSGIMiddleware

__all__ = ["instrument", "instrumented", "route_template", "user_of"]

_NAMED_GROUP: Final = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")  # (?P<year>[0-9]{4}), one nesting
_REGEX_NOISE: Final = re.compile(r"\\[AZ]|[\^$?]|\\(?=[./-])")
_RESOLVING: Final = "_kansoku_resolving"
_TEMPLATES: dict[str, str] = {}


def instrumented(app: Any) -> bool:
    """Whether `instrument()` ran on this handler already (its result is the wrapper)."""
    return bool(getattr(app, _RESOLVING, False))


def instrument(app: Any, runtime: Any) -> KansokuMiddleware | KansokuWSGIMiddleware:
    """Hook the handler's resolver, the failure signal and the loggers; wrap the handler."""
    resolve = app.resolve_request

    def resolve_request(request: Any) -> Any:
        match = resolve(request)
        route = getattr(match, "route", None)
        if isinstance(route, str):
            template = _TEMPLATES.get(route)
            if template is None:
                template = _TEMPLATES[route] = route_template(route)  # bounded: the project's routes
            set_route(template)
        return match

    app.resolve_request = resolve_request
    setattr(app, _RESOLVING, True)
    signals.got_request_exception.connect(_failed, dispatch_uid="kansoku")
    _bridge_loggers()
    if isinstance(app, ASGIHandler):
        return KansokuMiddleware(app, runtime=runtime)
    return KansokuWSGIMiddleware(app, runtime=runtime)


def route_template(route: str) -> str:
    """A resolver match's route in kansoku's form: `shop/items/<int:item_id>/` -> `/shop/items/{item_id}/`,
    `^articles/(?P<year>[0-9]{4})/$` -> `/articles/{year}/`."""
    return braces(_REGEX_NOISE.sub("", _NAMED_GROUP.sub(r"{\1}", route)))


def user_of(request: Any) -> dict[str, str] | None:
    """The authenticated user of the request (`django.contrib.auth`), as an event's user."""
    user = getattr(request, "user", None)  # set by AuthenticationMiddleware (lazily loaded)
    try:
        if user is None or not user.is_authenticated:
            return None
        return {"id": str(user.pk), "username": str(user.get_username())}
    except Exception:  # a broken auth backend must not lose the failure being reported
        return None


def _failed(sender: Any, request: Any = None, **extra: Any) -> None:
    """`got_request_exception`: the exception being handled, with the request and its user."""
    exc = sys.exc_info()[1]
    if exc is None:
        return
    user = user_of(request) if request is not None else None
    capture_exception(exc, mechanism="django", handled=False, **({"user": user} if user else {}))


def _bridge_loggers() -> None:
    """Django's records through kansoku's root handler only (not also Django's console handlers)."""
    for name in ("django", "django.server"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
