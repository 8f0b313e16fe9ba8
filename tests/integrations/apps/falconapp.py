"""The Falcon adapter of docs/frameworks/other.md, as written there, around a small Falcon app."""

from typing import Any

import falcon

import kansoku


class KansokuRoutes:
    """Falcon middleware: the matched route's template, for kansoku."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        if req.uri_template:
            kansoku.set_route(req.uri_template)


def report(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    """Falcon error handler: record the failure, then let Falcon answer its 500."""
    kansoku.capture_exception(ex, mechanism="falcon", handled=False)
    raise falcon.HTTPInternalServerError()


class Items:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        resp.media = {"item": item_id}


class Boom:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise ValueError("falcon resource failed")


def build() -> Any:
    """The app, instrumented (a function: the test builds it inside its own runtime)."""
    app = falcon.App(middleware=[KansokuRoutes()])
    app.add_error_handler(Exception, report)
    app.add_route("/items/{item_id}", Items())
    app.add_route("/boom", Boom())
    return kansoku.instrument(app)
