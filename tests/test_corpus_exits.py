"""The corpus: every fake secret kind, pushed through every vector, read back from every exit: 0 leaks.

One instrumented Starlette app (a real runtime: SQLite store, log files, alerts to a local webhook
receiver, traces at VERBOSE) serves a route that puts its secret into a log message, a log field,
a nested field, a span attribute, the arguments and locals of a traced call that fails, the
exception's message (an error event and an alert), and a breadcrumb; the request itself carries
the secret in its query string and User-Agent. Then stdout, the log files, the raw SQLite bytes
(database and WAL), the webhook bodies, the dashboard's HTML and the JSON API are searched for
every secret. A benign corpus (ids, timestamps, UUIDs, hashes, phone numbers, amounts) goes the
same way and must come out intact in the log lines.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import kansoku
from kansoku.store.tables import outbox
from kansoku.testing import isolated_runtime

from .corpus import ALL_CORES, BENIGN, LABELLED, SECRETS
from .tracing.test_otlp import Received, receiver  # noqa: F401 - the OTLP receiver fixture

pytestmark = pytest.mark.slow
CASES = {**SECRETS, **LABELLED}


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    """A local webhook receiver keeping every body it gets."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    thread.join()
    server.server_close()


@kansoku.traced(level="VERBOSE")
def charge(kind: str, note: str) -> None:
    """Fails with the secret in its message, its arguments and a local."""
    local_copy = f"local {note}"
    raise ValueError(f"charge failed for {kind}: {note} ({len(local_copy)})")


def _app() -> Starlette:
    log = kansoku.get_logger("shop.checkout")

    async def checkout(request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        value = CASES.get(kind) or BENIGN[kind]
        log.info(f"checkout note {value}", note=value, nested={"payment": {"memo": value, "items": [value]}})
        trace.get_current_span().set_attribute("checkout.note", value)
        try:
            charge(kind, value)
        except ValueError as exc:
            kansoku.capture_exception(exc, fingerprint=["corpus", kind])
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/checkout/{kind}", checkout, methods=["GET"])])


def _settings(tmp_path: Path, hook: str) -> dict[str, Any]:
    alerts = {"group_wait_seconds": 0, "poll_seconds": 0.05,
              "channels": [{"name": "hook", "type": "webhook", "url": hook, "secret": "webhook-signing-key-1"}],
              "rules": [{"name": "every_error", "severity_threshold": "low", "error_count_threshold": 1,
                         "time_window_minutes": 5, "suppression_minutes": 0, "channels": ["hook"]}]}
    return {"log_dir": tmp_path / "logs", "trace_level": "VERBOSE", "trace_store_rate": 0, "alerts": alerts,
            "service_name": "corpus-shop"}


def _open_alerts(runtime: Any) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.status.in_(("pending", "sending")))).scalar_one())


def _files(directory: Path, pattern: str) -> str:
    """Every file matching `pattern` under `directory`, as one text (bytes as latin-1)."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(directory.glob(pattern)) if p.is_file())


async def _wait(condition: Any, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_no_secret_leaves_by_any_exit(tmp_path: Path, webhook: tuple[str, list[bytes]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """62 kinds x every vector, searched in stdout, log files, SQLite + WAL bytes, webhooks, HTML, JSON."""
    hook, bodies = webhook
    with isolated_runtime(tmp_path, **_settings(tmp_path, hook)) as runtime:
        app = kansoku.instrument(_app())
        await runtime.start()
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for kind, value in {**CASES, **BENIGN}.items():
                one_line = value.replace("\n", " ")
                response = await client.get(f"/checkout/{kind}?q={quote(value)}&api_key={quote(one_line)}",
                                            headers={"User-Agent": f"shop-client/1.0 ({one_line})"})
                assert response.status_code == 200
            runtime.close(10)  # every event stored, so every alert is in the outbox
            await _wait(lambda: bool(bodies) and _open_alerts(runtime) == 0)  # the dispatcher runs on this loop
            runtime.close(10)
            exits: dict[str, str] = {"webhook bodies": "\n".join(b.decode() for b in bodies)}
            exits["sqlite + wal"] = _files(tmp_path, "kansoku.db*")
            pages = ["/kansoku/errors", "/kansoku/traces", "/kansoku/alerts", "/kansoku/"]
            api = ["/kansoku/api/errors?limit=100", "/kansoku/api/alerts/deliveries?limit=100"]
            listing = (await client.get(api[0])).json()["items"]
            pages += [f"/kansoku/errors/{group['id']}" for group in listing]
            api += [f"/kansoku/api/errors/{group['id']}" for group in listing]
            traces = {row["trace_id"] for group in listing
                      for row in (await client.get(f"/kansoku/api/errors/{group['id']}")).json()["events"]
                      if row.get("trace_id")}
            pages += [f"/kansoku/traces/{trace_id}" for trace_id in traces]
            exits["dashboard html"] = "\n".join([(await client.get(p)).text for p in pages])
            exits["json api"] = "\n".join([(await client.get(p)).text for p in api])
        await runtime.stop()
    exits["log files"] = _files(tmp_path / "logs", "**/*")
    exits["stdout"] = capsys.readouterr().out

    assert len(listing) >= len(CASES)  # every kind made its group
    assert len(traces) >= len(CASES) // 2  # and its trace pages were read
    leaks = {name: [core for core in ALL_CORES if core in text] for name, text in exits.items()}
    assert leaks == {name: [] for name in exits}
    assert all(len(text) > 1000 for text in exits.values())  # every exit was actually read

    lines = [json.loads(line) for line in exits["log files"].splitlines() if line.startswith("{")]
    notes = {line["note"] for line in lines if line.get("logger") == "shop.checkout"}
    assert set(BENIGN.values()) <= notes  # the benign corpus comes out intact


async def test_no_secret_reaches_an_otlp_receiver(tmp_path: Path,
                                                  receiver: tuple[str, Received]) -> None:  # noqa: F811
    """The same requests with spans sent over OTLP/HTTP: the receiver decodes no secret anywhere."""
    base_url, received = receiver
    with isolated_runtime(tmp_path, otlp_endpoint=base_url, trace_level="VERBOSE", service_name="corpus-shop",
                          alert_dispatcher=False) as runtime:
        app = kansoku.instrument(_app())
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for kind, value in CASES.items():
                one_line = value.replace("\n", " ")
                await client.get(f"/checkout/{kind}?q={quote(value)}", headers={"User-Agent": f"c/1 ({one_line})"})
        runtime.close(10)
    decoded = repr(received.spans)
    assert len(received.spans) >= 2 * len(CASES)  # the server span and the traced call of each request
    assert [core for core in ALL_CORES if core in decoded] == []
