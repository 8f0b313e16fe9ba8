"""The integrations in-process: route templates in one form, failures captured once, in place or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import httpx
import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from werkzeug.test import Client

import kansoku
from kansoku.integrations import braces, interface_of
from kansoku.integrations.django import route_template
from kansoku.store import queries
from kansoku.testing import isolated_runtime


@pytest.fixture
def real_runtime(tmp_path: Path) -> Iterator[Any]:
    """The real runtime on a throwaway SQLite store, current for the test."""
    with isolated_runtime(tmp_path) as runtime:
        yield runtime


def stored_groups(runtime: Any) -> list[dict[str, Any]]:
    """The error groups in the store, once every captured event is written."""
    runtime.errors.flush(10)
    return [queries.get_group(runtime.engine, g["id"], events=1)
            for g in queries.list_groups(runtime.engine)["items"]]


@pytest.mark.parametrize(("declared", "template"), [
    ("items/<int:item_id>/", "/items/{item_id}/"),  # Django path()
    ("/shop/items/<int:item_id>", "/shop/items/{item_id}"),  # Flask, blueprint prefix
    ("/files/<path:rest>", "/files/{rest}"),
    ("/items/{item_id:int}", "/items/{item_id}"),  # Litestar, Starlette
    ("/items/{item_id}", "/items/{item_id}"),
    ("", "/"),
])
def test_one_route_template_form(declared: str, template: str) -> None:
    """Every framework's declared route becomes `/items/{item_id}`: braces, no types, leading slash."""
    assert braces(declared) == template


def test_django_regex_routes_in_the_same_form() -> None:
    """re_path regexes (and includes mixing both kinds) read like path() routes."""
    assert route_template(r"^articles/(?P<year>[0-9]{4})/$") == "/articles/{year}/"
    assert route_template(r"^api/(?P<slug>[\w-]+)/items/<int:item_id>/") == "/api/{slug}/items/{item_id}/"


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """A bare ASGI app."""


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    """A bare WSGI app."""
    return []


def test_interface_of_asgi_and_wsgi_callables() -> None:
    """A coroutine function of three arguments is ASGI, a function of two WSGI; frameworks by class."""
    assert interface_of(asgi_app) == "asgi" and interface_of(wsgi_app) == "wsgi"
    assert interface_of(flask.Flask(__name__)) == "wsgi"
    assert interface_of(Litestar([])) == "asgi"


@pytest.mark.parametrize(("thing", "named"), [(42, "42 (an int)"), ("main:app", "'main:app' (a str)"),
                                              (print, "(a builtin_function_or_method)")])
def test_instrument_refuses_what_is_neither_asgi_nor_wsgi(thing: Any, named: str) -> None:
    """A clear TypeError naming what was passed, before anything is set up."""
    with pytest.raises(TypeError, match="ASGI or a WSGI application") as caught:
        kansoku.instrument(thing)
    assert named in str(caught.value)


def test_a_dropped_wrapper_is_reported_at_once(real_runtime: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`kansoku.instrument(app)` without using the result: said on stderr, naming the fix."""
    kansoku.instrument(asgi_app)
    assert "write `app = kansoku.instrument(app)`" in capsys.readouterr().err
    kept = kansoku.instrument(wsgi_app)
    kept.close()
    assert capsys.readouterr().err == ""


def test_a_wrapper_that_served_is_not_reported(real_runtime: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrapper that answered a request and is dropped later (tests, reloads) is not a mistake."""
    wrapped = kansoku.instrument(wsgi_app)
    Client(wrapped).get("/health", buffered=True)
    wrapped.close()
    del wrapped
    assert "dropped" not in capsys.readouterr().err


def test_the_start_line_says_how_the_dashboard_is_opened(real_runtime: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The "kansoku started" line names the dashboard's access mode in clear (no key redacts it)."""
    import json

    wrapped = kansoku.instrument(wsgi_app)
    Client(wrapped).get("/health", buffered=True)
    wrapped.close()
    started = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"kansoku started"' in line]
    assert started and started[0]["dashboard_access"] == "loopback clients only"


def flask_app() -> flask.Flask:
    """A Flask app with a blueprint route and a failing view."""
    app = flask.Flask(__name__)
    shop = flask.Blueprint("shop", __name__, url_prefix="/shop")

    @shop.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return str(item_id)

    @app.get("/boom")
    def boom() -> str:
        raise ValueError("flask failed")

    app.register_blueprint(shop)
    return app


def test_flask_in_place_route_and_one_event_for_its_500(real_runtime: Any) -> None:
    """instrument() changes the Flask app in place; its 500 page is one event with route and tags."""
    app = flask_app()
    kansoku.instrument(app)  # in place: the result need not be used
    client = Client(app)
    assert client.get("/shop/items/3", buffered=True).get_data() == b"3"
    failed = client.get("/boom", buffered=True)
    assert failed.status_code == 500 and b"Internal Server Error" in failed.get_data()
    try:
        [group] = stored_groups(real_runtime)
    finally:
        app.wsgi_app.close()  # type: ignore[attr-defined]
    event = group["events"][0]
    assert (event["exception_type"], event["mechanism"], event["handled"]) == ("ValueError", "flask", False)
    assert event["request"]["route"] == "/boom"
    assert event["tags"] == {"flask.endpoint": "boom"}
    labels = {"method": "GET", "route": "/shop/items/{item_id}", "status": "200"}
    assert real_runtime.registry.get_sample_value("http_requests_total", labels) == 1.0


@get("/items/{item_id:int}")
async def litestar_item(item_id: FromPath[int]) -> dict[str, int]:
    return {"item": item_id}


@get("/boom")
async def litestar_boom() -> None:
    raise ValueError("litestar failed")


async def test_litestar_in_place_route_and_one_event_for_its_500(real_runtime: Any) -> None:
    """instrument() changes the Litestar app in place; the 500 it renders is one event with the route."""
    app = Litestar([litestar_item, litestar_boom])
    assert kansoku.instrument(app) is app and kansoku.instrument(app) is app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        assert (await client.get("/items/5")).json() == {"item": 5}
        failed = await client.get("/boom")
        missing = await client.get("/nowhere")
    assert failed.status_code == 500 and failed.json() == {"status_code": 500, "detail": "Internal Server Error"}
    assert missing.status_code == 404
    [group] = stored_groups(real_runtime)
    event = group["events"][0]
    assert (event["exception_type"], event["mechanism"]) == ("ValueError", "litestar")
    assert event["request"]["route"] == "/boom"
    for route, status in (("/items/{item_id}", "200"), ("<unmatched>", "404")):
        labels = {"method": "GET", "route": route, "status": status}
        assert real_runtime.registry.get_sample_value("http_requests_total", labels) == 1.0


def test_the_documented_falcon_adapter(real_runtime: Any) -> None:
    """docs/frameworks/other.md's two calls: Falcon's route template and its 500 as one event."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "apps"))
    try:
        from falconapp import build  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    app = build()
    client = Client(app)
    try:
        assert client.get("/items/9", buffered=True).json == {"item": "9"}
        failed = client.get("/boom", buffered=True)
        [group] = stored_groups(real_runtime)
    finally:
        app.close()
    assert failed.status_code == 500 and failed.json["title"] == "500 Internal Server Error"
    event = group["events"][0]
    assert (event["exception_type"], event["mechanism"], event["request"]["route"]) == (
        "ValueError", "falcon", "/boom")
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert real_runtime.registry.get_sample_value("http_requests_total", labels) == 1.0
    assert real_runtime.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/boom", "status": "500"}) == 1.0
