"""`kansoku run MODULE:APP`: any ASGI app served instrumented, with no change to its code."""

from __future__ import annotations

import concurrent.futures
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

Kansoku = Callable[..., Any]  # fixtures of conftest.py
Serve = Callable[..., Any]

STARLETTE_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"pid": os.getpid(), "name": request.path_params["name"]})

app = Starlette(routes=[Route("/hello/{name}", hello)])
"""

FASTAPI_APP = """
import os, pathlib
from contextlib import asynccontextmanager
from fastapi import FastAPI

MARKS = pathlib.Path(os.environ["LIFESPAN_MARKS"])

@asynccontextmanager
async def lifespan(app):
    (MARKS / f"started-{os.getpid()}").touch()
    app.state.greeting = "lifespan ran"
    yield
    (MARKS / f"stopped-{os.getpid()}").touch()

app = FastAPI(lifespan=lifespan)

@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"pid": os.getpid(), "item": item_id, "greeting": app.state.greeting}

def create():
    return app
"""

RAW_APP = """
import os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"raw {os.getpid()}".encode()})
"""


def write_app(directory: Path, name: str, source: str) -> None:
    """Put an app module into the directory `kansoku run` imports from."""
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def requests_total(metrics_text: str, route: str) -> float:
    """Sum of http_requests_total over every label set of `route`."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


def spread_requests(base: str, path: str, want_pids: int, limit: int = 400) -> tuple[int, set[int], list[str]]:
    """GET `path` on fresh connections, 16 at a time, until `want_pids` processes answered."""
    pids: set[int] = set()
    request_ids: list[str] = []
    sent = 0

    def one(index: int) -> httpx.Response:
        return httpx.get(f"{base}{path}".format(i=index), timeout=10.0)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        while len(pids) < want_pids and sent < limit:
            for response in pool.map(one, range(sent, sent + 16)):
                assert response.status_code == 200, response.text
                pids.add(response.json()["pid"])
                request_ids.append(response.headers.get("x-request-id", ""))
            sent += 16
    return sent, pids, request_ids


@pytest.mark.slow
def test_fastapi_app_with_lifespan_two_workers(serve: Serve, tmp_path: Path, port: int) -> None:
    """Two workers serve, each instrumented, each ran the app's lifespan; /metrics adds them up."""
    write_app(tmp_path, "shop", FASTAPI_APP)
    marks = tmp_path / "marks"
    marks.mkdir()
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "shop:app", "--workers", "2", "--port", str(port), env={"LIFESPAN_MARKS": str(marks)})
    assert served.wait_http(f"{base}/health").status_code == 200
    sent, pids, request_ids = spread_requests(base, "/items/{i}", want_pids=2)
    assert len(pids) == 2, f"only {pids} answered {sent} requests"
    assert all(request_ids), "every answer carries kansoku's X-Request-ID"
    assert httpx.get(f"{base}/items/1").json()["greeting"] == "lifespan ran"
    sent += 1
    for _ in range(4):  # whichever worker answers the scrape, it reports every worker's samples
        assert requests_total(httpx.get(f"{base}/metrics").text, "/items/{item_id}") == sent
    assert served.interrupt() == 0
    assert sorted(p.name for p in marks.iterdir()) == sorted(
        [f"started-{pid}" for pid in pids] + [f"stopped-{pid}" for pid in pids])


@pytest.mark.slow
def test_starlette_app_two_workers_clean_multiprocess_dir(serve: Serve, tmp_path: Path, port: int) -> None:
    """A plain Starlette app on two workers; stale files in the configured metrics directory are cleared."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (multiproc / "counter_99999.db").write_bytes(b"stale samples of a previous run")
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "hello:app", "--workers", "2", "--port", str(port),
                   env={"KANSOKU_MULTIPROCESS_DIR": str(multiproc)})
    served.wait_http(f"{base}/health")
    assert not (multiproc / "counter_99999.db").exists()
    sent, pids, request_ids = spread_requests(base, "/hello/user{i}", want_pids=2)
    assert len(pids) == 2
    assert all(request_ids)
    metrics = httpx.get(f"{base}/metrics").text
    assert requests_total(metrics, "/hello/{name}") == sent
    assert served.interrupt() == 0


@pytest.mark.slow
def test_plain_asgi_app_is_wrapped_in_the_middleware(serve: Serve, tmp_path: Path, port: int) -> None:
    """A bare ASGI callable gets /metrics, /health and request ids from KansokuMiddleware."""
    write_app(tmp_path, "raw", RAW_APP)
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "raw:app", "--port", str(port))
    served.wait_http(f"{base}/health")
    response = httpx.get(f"{base}/anything")
    assert response.text.startswith("raw ")
    assert response.headers["x-request-id"]
    assert requests_total(httpx.get(f"{base}/metrics").text, "<unmatched>") == 1
    assert served.interrupt() == 0


@pytest.mark.slow
def test_factory_and_env_file(serve: Serve, tmp_path: Path, port: int) -> None:
    """--factory calls the function; --env-file settings reach the instrumented app (service name)."""
    write_app(tmp_path, "shop", FASTAPI_APP)
    (tmp_path / "marks").mkdir()
    (tmp_path / "prod.env").write_text("KANSOKU_SERVICE_NAME=from-env-file\n")
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "shop:create", "--factory", "--env-file", "prod.env", "--port", str(port),
                   env={"LIFESPAN_MARKS": str(tmp_path / "marks")})
    served.wait_http(f"{base}/health")
    assert httpx.get(f"{base}/items/7").json()["item"] == 7
    assert served.interrupt() == 0
    services = {json.loads(line).get("service") for line in served.stdout.splitlines() if line.startswith("{")}
    assert services == {"from-env-file"}


def test_target_without_colon_is_a_usage_error(kansoku: Kansoku) -> None:
    """`kansoku run myapp`: exit 2 with the expected form."""
    result = kansoku("run", "myapp")
    assert result.code == 2
    assert "'module:attribute'" in result.stderr


def test_missing_module_is_a_usage_error_with_the_fix(kansoku: Kansoku) -> None:
    """An unknown module: exit 2, naming it and suggesting --app-dir."""
    result = kansoku("run", "no_such_module_here:app")
    assert result.code == 2
    assert "no_such_module_here" in result.stderr
    assert "--app-dir" in result.stderr


def test_reload_with_workers_is_refused(kansoku: Kansoku, tmp_path: Path) -> None:
    """--reload with --workers 2: exit 2 saying to drop one of them."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    result = kansoku("run", "hello:app", "--reload", "--workers", "2")
    assert result.code == 2
    assert "--reload" in result.stderr


def test_port_in_use_exits_1_with_the_fix(kansoku: Kansoku, tmp_path: Path) -> None:
    """Something already listens on --port: exit 1 and the advice to pick another port."""
    import socket

    write_app(tmp_path, "hello", STARLETTE_APP)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = kansoku("run", "hello:app", "--port", str(busy.getsockname()[1]))
    assert result.code == 1
    assert "already in use" in result.stderr
    assert "--port" in result.stderr


def test_missing_attribute_exits_1_naming_it(kansoku: Kansoku, tmp_path: Path, port: int) -> None:
    """`hello:application` when the module has `app`: exit 1 naming the attribute."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    result = kansoku("run", "hello:application", "--port", str(port))
    assert result.code == 1
    assert "has no attribute 'application'" in result.stderr


def test_factory_without_flag_is_explained(kansoku: Kansoku, tmp_path: Path, port: int) -> None:
    """A zero-argument function given without --factory: exit 1 suggesting --factory."""
    write_app(tmp_path, "shop", FASTAPI_APP)
    result = kansoku("run", "shop:create", "--port", str(port), env={"LIFESPAN_MARKS": str(tmp_path)})
    assert result.code == 1
    assert "pass --factory" in result.stderr


def test_bad_configuration_exits_3_before_starting(kansoku: Kansoku, tmp_path: Path, port: int) -> None:
    """An invalid KANSOKU_* value stops `kansoku run` with exit 3 and the variable's name."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    result = kansoku("run", "hello:app", "--port", str(port), env={"KANSOKU_TRACE_SAMPLE_RATE": "2"})
    assert result.code == 3
    assert "KANSOKU_TRACE_SAMPLE_RATE" in result.stderr


def test_missing_env_file_is_a_usage_error(kansoku: Kansoku, tmp_path: Path) -> None:
    """--env-file naming a missing file: exit 2."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    result = kansoku("run", "hello:app", "--env-file", "missing.env")
    assert result.code == 2
    assert "missing.env" in result.stderr


def test_import_error_exits_1_with_the_apps_traceback_and_no_serving_line(
    kansoku: Kansoku, tmp_path: Path, port: int
) -> None:
    """A module that raises on import: exit 1, its own traceback (not click's or uvicorn's), never "serving"."""
    (tmp_path / "broken.py").write_text('raise RuntimeError("boom at import")\n')
    result = kansoku("run", "broken:app", "--port", str(port))
    assert result.code == 1
    assert "importing 'broken' failed" in result.stderr
    assert 'broken.py", line 1, in <module>' in result.stderr
    assert "RuntimeError: boom at import" in result.stderr
    assert "serving" not in result.stderr
    assert "click" not in result.stderr and "uvicorn" not in result.stderr


def test_not_an_app_is_named_with_its_type(kansoku: Kansoku, tmp_path: Path, port: int) -> None:
    """`app = 3`: exit 1, "'m3:app' is an int (3), not an ASGI or WSGI application"."""
    (tmp_path / "m3.py").write_text("app = 3\n")
    result = kansoku("run", "m3:app", "--port", str(port))
    assert result.code == 1
    assert "'m3:app' is an int (3), not an ASGI or WSGI application" in result.stderr
    assert "serving" not in result.stderr


@pytest.mark.slow
def test_serving_line_comes_once_the_app_is_loaded(serve: Serve, tmp_path: Path, port: int) -> None:
    """The "serving" line is printed by the process that imported the app, with the address."""
    write_app(tmp_path, "hello", STARLETTE_APP)
    served = serve("run", "hello:app", "--port", str(port))
    served.wait_http(f"http://127.0.0.1:{port}/health")
    assert f"kansoku run: serving hello:app on http://127.0.0.1:{port}; metrics /metrics" in served.stderr
    assert served.interrupt() == 0
