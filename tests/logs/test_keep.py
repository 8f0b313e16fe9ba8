"""The log store's keeper: levels, per-logger levels, the INFO budget, the bounded queue, the request path."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import kansoku
from kansoku import _safety, logs
from kansoku.logs import LogKeeper, record_of
from kansoku.settings import load_settings
from kansoku.store.tables import logs as logs_table
from kansoku.testing import isolated_runtime


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _keeper(**options: Any) -> tuple[LogKeeper, list[dict[str, Any]]]:
    written: list[dict[str, Any]] = []
    return LogKeeper(written.extend, **options), written


def _line(logger: str = "app", event: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"timestamp": "2027-01-15T08:00:00.250Z", "level": "info", "logger": logger, "event": event, **fields}


def test_record_of_splits_columns_from_attributes() -> None:
    """An event dict becomes a record: time in epoch seconds, the known columns, every other field as attributes."""
    record = record_of(20, _line(service="shop", trace_id="ab" * 16, request_id="r1", order_id=7, category="audit"))
    assert record == {"timestamp": 1800000000.25, "level": 20, "message": "hello", "logger": "app",
                      "service": "shop", "environment": None, "version": None, "request_id": "r1",
                      "trace_id": "ab" * 16, "span_id": None, "attributes": {"order_id": 7, "category": "audit"}}


def test_level_and_per_logger_levels() -> None:
    """Lines under the store level are not kept; the longest matching logger prefix sets its own level."""
    keeper, written = _keeper(level=20, logger_levels={"sqlalchemy": 30, "sqlalchemy.pool": 10}, per_second=0)
    for logger, level in [("app", 10), ("app", 20), ("sqlalchemy.engine", 20), ("sqlalchemy.engine", 30),
                          ("sqlalchemy.pool.impl", 10), ("sqlalchemyx", 20)]:
        keeper(level, _line(logger, f"{logger}:{level}"))
    keeper.flush()
    assert [r["message"] for r in written] == ["app:20", "sqlalchemy.engine:30", "sqlalchemy.pool.impl:10",
                                               "sqlalchemyx:20"]


def test_info_budget_per_second_warnings_always_kept() -> None:
    """Past the per-second budget INFO lines are counted and dropped; WARNING and up are always kept."""
    clock = Clock()
    keeper, written = _keeper(per_second=5, clock=clock)
    for n in range(8):
        keeper(20, _line(event=f"info {n}"))
    keeper(40, _line(event="error"))
    clock.now += 1.0  # a second later the bucket holds a second's worth again
    for n in range(8, 16):
        keeper(20, _line(event=f"info {n}"))
    keeper.flush()
    messages = [r["message"] for r in written]
    assert messages == [f"info {n}" for n in range(5)] + ["error"] + [f"info {n}" for n in range(8, 13)]
    assert keeper.not_stored == {"budget": 6, "queue": 0, "error": 0}


def test_full_queue_drops_and_counts() -> None:
    """When the writer falls behind, lines past the bound are dropped and counted, never blocking."""
    keeper, written = _keeper(per_second=0, max_pending=3, interval=60)
    for n in range(5):
        keeper(20, _line(event=str(n)))
    assert keeper.pending() == 3 and keeper.not_stored["queue"] == 2
    keeper.flush()
    assert [r["message"] for r in written] == ["0", "1", "2"] and keeper.stored == 3


def test_store_failure_is_counted_and_reported() -> None:
    """A failing store counts the batch as not stored (reason error) and reports an internal error."""
    def fail(records: list[dict[str, Any]]) -> None:
        raise OSError("disk full")

    keeper = LogKeeper(fail, per_second=0, interval=60)
    keeper(20, _line())
    before = _safety.internal_error_count("log-store")
    keeper.flush()
    assert keeper.not_stored["error"] == 1 and _safety.internal_error_count("log-store") == before + 1


def test_kept_line_is_a_copy() -> None:
    """The keeper copies the event dict: the renderer may change the original (the console one pops keys)."""
    keeper, written = _keeper(per_second=0, interval=60)
    line = _line()
    keeper(20, line)
    line.clear()
    keeper.flush()
    assert written[0]["message"] == "hello"


def _app() -> Starlette:
    log = kansoku.get_logger("shop.orders")

    async def order(request: Request) -> PlainTextResponse:
        log.info("order created", order_id=request.path_params["oid"], card="4111 1111 1111 1111")
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/orders/{oid}", order)])


async def test_a_request_line_reaches_the_store_with_its_ids(tmp_path: Path) -> None:
    """A line logged in a request is stored (redacted) with the request's trace, span and request ids."""
    with isolated_runtime(tmp_path, service_name="shop") as runtime:
        app = kansoku.instrument(_app())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/orders/o-5521", headers={"X-Request-ID": "req-5521"})
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        rows: list[Any] = []
        while time.monotonic() < deadline and len(rows) < 2:
            with runtime.engine.connect() as conn:
                rows = conn.execute(select(logs_table).where(logs_table.c.request_id == "req-5521")
                                    .order_by(logs_table.c.id)).all()
            await asyncio.sleep(0.05)
        app_line, access_line = rows
        assert (app_line.message, app_line.logger, app_line.service, app_line.level) == (
            "order created", "shop.orders", "shop", 20)
        assert app_line.attributes["order_id"] == "o-5521" and "4111" not in str(app_line.attributes)
        assert app_line.trace_id and len(app_line.trace_id) == 32 and app_line.trace_id == access_line.trace_id
        assert access_line.attributes["status"] == 200 and access_line.attributes["route"] == "/orders/{oid}"
    assert logs._logger._STATE.keep is None  # the runtime stopped handing lines over at shutdown


def test_store_logs_off_keeps_nothing(tmp_path: Path) -> None:
    """store_logs=false: no keeper, no line in the store."""
    with isolated_runtime(tmp_path, store_logs=False) as runtime:
        assert runtime.log_keeper is None and logs._logger._STATE.keep is None


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_every_path_reaches_the_keeper(fmt: str) -> None:
    """kansoku loggers (fast path and exception path) and stdlib logging all hand their lines over."""
    keeper, written = _keeper(per_second=0, interval=60)
    settings = load_settings(log_format=fmt, stdlib_logging=True)
    logs.configure_logging(settings, stream=io.StringIO(), keep=keeper)
    try:
        log = kansoku.get_logger("app")
        log.info("plain", n=1)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", n=2)
        logging.getLogger("lib.client").warning("from stdlib %s", "x")
        keeper.flush()
    finally:
        logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
        logs.unbridge_stdlib()
    assert [(r["message"], r["logger"], r["level"]) for r in written] == [
        ("plain", "app", 20), ("failed", "app", 40), ("from stdlib x", "lib.client", 30)]
    assert written[1]["attributes"]["exception"]["type"] == "ValueError"
