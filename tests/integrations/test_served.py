"""Real framework apps through real servers, every pillar checked over the wire (issue 15's bar)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.servers import free_port

from .pillars import DJANGO, DJANGO_ASGI, FLASK, LITESTAR, check_errors, check_served

pytestmark = pytest.mark.slow


def _run(serve: Any, target: str, *args: str) -> tuple[Any, str]:
    port = free_port()
    server = serve("kansoku", "run", target, "--port", str(port), *args)
    base = f"http://127.0.0.1:{port}"
    server.wait_ready(base)
    return server, base


def test_django_asgi_under_uvicorn_with_no_code_change(serve: Any) -> None:
    """`kansoku run mysite.asgi:application`: Django's resolver routes, its 500s, its user, its loggers."""
    server, base = _run(serve, "mysite.asgi:application")
    check_served(server, base, DJANGO_ASGI)
    event = check_errors(server, DJANGO)
    assert event["user"] == {"id": "7", "username": "ada"}
    logged = server.lines("django.request")
    assert [line["event"] for line in logged if line["level"] == "error"] == [
        "Internal Server Error: /boom/", "Service Unavailable: /upstream/"]
    assert "is an ASGI app: starting uvicorn" in server.output()
    assert server.stop(signal.SIGINT) == 0


def test_django_wsgi_under_gunicorn_two_workers_the_manual_way(serve: Any, tmp_path: Path) -> None:
    """wsgi.py with `application = kansoku.instrument(...)` under `gunicorn -w 2` started directly,
    with kansoku's gunicorn hooks: the two workers' counts add up exactly in every scrape."""
    port = free_port()
    server = serve("gunicorn", "-c", "python:kansoku.integrations.gunicorn", "-w", "2", "--no-control-socket",
                   "-b", f"127.0.0.1:{port}", "mysite.wsgi_instrumented:application")
    base = f"http://127.0.0.1:{port}"
    server.wait_ready(base)
    check_served(server, base, DJANGO, workers=2)
    assert check_errors(server, DJANGO)["user"] == {"id": "7", "username": "ada"}
    assert server.stop() == 0


def test_flask_with_kansoku_run_two_workers(serve: Any) -> None:
    """`kansoku run flaskapp:app --workers 2` serves the WSGI app with gunicorn; counts sum exactly."""
    server, base = _run(serve, "flaskapp:app", "--workers", "2")
    check_served(server, base, FLASK, workers=2)
    assert check_errors(server, FLASK)["tags"] == {"flask.endpoint": "boom"}
    assert "is a WSGI app: starting gunicorn with 2 workers" in server.output()
    assert server.stop(signal.SIGINT) == 0


def test_litestar_under_uvicorn_with_no_code_change(serve: Any) -> None:
    """`kansoku run litestarapp:app`: the handler's path template, and the 500 Litestar renders."""
    server, base = _run(serve, "litestarapp:app")
    check_served(server, base, LITESTAR)
    assert server.stop(signal.SIGINT) == 0


def test_django_wsgi_with_kansoku_run(serve: Any) -> None:
    """`kansoku run mysite.wsgi:application`: the untouched wsgi.py, served by gunicorn."""
    server, base = _run(serve, "mysite.wsgi:application")
    check_served(server, base, DJANGO, items=50)
    assert server.stop(signal.SIGINT) == 0
