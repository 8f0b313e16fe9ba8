"""Arize Phoenix (a real OTLP backend from PyPI) shows SQL query spans under server spans, none of kansoku's own.

Phoenix is not a dependency of kansoku (its pins, SQLAlchemy and OpenTelemetry among them, are not
kansoku's): `make system-deps` (part of `make test`, so of CI) installs it once into .phoenix/ with
scripts/install-phoenix (about 850 MB; 5m47s on a loaded 2-CPU machine, 1m28s of it CPU). The test
uses KANSOKU_PHOENIX, else .phoenix/bin/phoenix, else `phoenix` on PATH; with none it is skipped,
saying how to install it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kansoku import runtime as _runtime

_VENV = Path(__file__).resolve().parents[2] / ".phoenix" / "bin" / "phoenix"
PHOENIX = os.environ.get("KANSOKU_PHOENIX") or (str(_VENV) if _VENV.exists() else shutil.which("phoenix"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(PHOENIX is None, reason="Arize Phoenix is not installed: scripts/install-phoenix "
                                 "(or KANSOKU_PHOENIX=/path/to/phoenix)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spans(base: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/v1/projects/default/spans", params={"limit": 1000}, timeout=10)
    response.raise_for_status()
    return list(response.json()["data"])


def test_phoenix_shows_sql_spans_as_children_of_server_spans(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Five requests: five server spans, each with its SELECT child; no span of kansoku's own store."""
    assert PHOENIX is not None
    port = _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(_free_port()), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = (tmp_path / "phoenix.log").open("wb")
    phoenix = subprocess.Popen([PHOENIX, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert phoenix.poll() is None, (tmp_path / "phoenix.log").read_text()[-2000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")  # made before instrument()
        with engine.begin() as conn:
            conn.execute(text("create table items (id integer primary key, name text)"))

        async def item(request: Request) -> JSONResponse:
            with engine.connect() as conn:
                rows = conn.execute(text("select id, name from items where id = :i"),
                                    {"i": int(request.path_params["i"])}).all()
            return JSONResponse({"rows": len(rows)})

        app = Starlette(routes=[Route("/items/{i}", item)])
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
        import kansoku

        kansoku.instrument(app, database_url=f"sqlite:///{tmp_path / 'kansoku.db'}", service_name="phx",
                           instrument_sqlalchemy=True, dashboard=False)
        try:
            async def drive() -> None:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
                    for i in range(5):
                        assert (await client.get(f"/items/{i}")).status_code == 200

            asyncio.run(drive())
            provider = _runtime.current().tracer_provider  # type: ignore[union-attr]
            assert provider is not None and provider.force_flush(10_000)
        finally:
            _runtime.shutdown(5.0)
        spans: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(spans) < 10 and time.monotonic() < deadline:
            spans = _spans(base)
            if len(spans) < 10:
                time.sleep(1)
    finally:
        phoenix.terminate()
        try:
            phoenix.wait(30)
        except subprocess.TimeoutExpired:
            phoenix.kill()
            phoenix.wait()
        log.close()
    by_id = {span["context"]["span_id"]: span for span in spans}
    servers = [s for s in spans if s["name"] == "GET /items/{i}"]
    queries = [s for s in spans if s["name"].startswith("SELECT")]
    assert len(servers) == len(queries) == 5 and len(spans) == 10  # nothing else: no store, no connect spans
    for query in queries:
        parent = by_id[query["parent_id"]]
        assert parent["name"] == "GET /items/{i}"
        assert parent["context"]["trace_id"] == query["context"]["trace_id"]
