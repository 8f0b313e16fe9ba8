"""`kansoku run` with its store down: the app serves, and one plain line says errors are not being stored."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py

APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def hello(request):
    return PlainTextResponse("hello")

app = Starlette(routes=[Route("/", hello)])
"""


def _closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_unreachable_postgresql_is_said_once_plainly(serve: Serve, tmp_path: Path, port: int) -> None:
    """PostgreSQL refusing connections: the app answers; one line says errors are not stored and what to check."""
    (tmp_path / "hello.py").write_text(textwrap.dedent(APP))
    url = f"postgresql://kansoku:pw-secret-1@127.0.0.1:{_closed_port()}/kansoku"
    served = serve("run", "hello:app", "--port", str(port), env={"KANSOKU_DATABASE_URL": url})
    assert served.wait_http(f"http://127.0.0.1:{port}/").text == "hello"
    deadline = time.monotonic() + 30
    while "errors are not being stored" not in served.stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in (served.stdout + served.stderr).splitlines() if "errors are not being stored" in line]
    assert len(lines) == 1, served.stdout[-3000:]
    assert "KANSOKU_DATABASE_URL" in lines[0] and "database server is running" in lines[0]
    assert "pw-secret-1" not in served.stdout + served.stderr
