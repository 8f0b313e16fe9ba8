"""Structured logging: line format, levels, helpers, context, stdlib bridge, files, safety."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import uvicorn

from kansoku import logs
from kansoku.context import context, propagate_to_threads
from kansoku.settings import Settings, load_settings

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def configure() -> Iterator[Callable[..., Lines]]:
    """Configure logging into a buffer; returns a reader of the JSON lines written so far."""

    def apply(**overrides: Any) -> Lines:
        buffer = io.StringIO()
        overrides.setdefault("log_format", "json")
        logs.configure_logging(load_settings(**overrides), stream=buffer)
        return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield apply
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
    logs.unbridge_stdlib()


def test_json_line_has_the_documented_fields(configure: Callable[..., Lines]) -> None:
    """A line is one JSON object with timestamp (UTC, ms), level, logger, event, category, identity."""
    lines = configure(service_name="shop", environment="prod", version="1.2.3")
    logs.get_logger("orders").info("order created", order_id=7, amount=12.5)
    (line,) = lines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("timestamp"))
    assert line == {"level": "info", "logger": "orders", "event": "order created", "category": "application",
                    "order_id": 7, "amount": 12.5, "service": "shop", "environment": "prod", "version": "1.2.3"}
    assert list(line)[:3] == ["level", "logger", "event"]


def test_levels_filter_and_trace_exists(configure: Callable[..., Lines]) -> None:
    """Below the configured level nothing is written; TRACE is a level under DEBUG."""
    lines = configure(log_level="INFO")
    log = logs.get_logger("x")
    log.trace("t")
    log.debug("d")
    log.info("i")
    assert [line["event"] for line in lines()] == ["i"]
    lines = configure(log_level="TRACE")
    log.trace("t")
    log.critical("c")
    assert [(line["level"], line["category"]) for line in lines()] == [("trace", "application"), ("critical", "error")]


def test_helpers_set_category_and_level(configure: Callable[..., Lines]) -> None:
    """audit, security, business and performance log with their category and the right level."""
    lines = configure(slow_threshold_ms=100)
    log = logs.get_logger("svc")
    log.audit("create", resource="user", result="success", resource_id=42)
    log.security("login failed", severity="high", ip="203.0.113.9")
    log.security("odd header", severity="low")
    log.business("order placed", value=99.5)
    log.performance("query", 0.05)
    log.performance("query", 0.25)
    got = [(line["category"], line["level"]) for line in lines()]
    assert got == [("audit", "info"), ("security", "error"), ("security", "warning"), ("business", "info"),
                   ("performance", "info"), ("performance", "warning")]
    audit, _, _, business, fast, slow = lines()
    assert (audit["action"], audit["resource"], audit["result"]) == ("create", "user", "success")
    assert audit["resource_id"] == 42
    assert business["value"] == 99.5
    assert fast["slow_operation"] is False and fast["duration_ms"] == 50.0
    assert slow["slow_operation"] is True and slow["threshold_ms"] == 100.0


def test_context_fields_appear_and_call_fields_win(configure: Callable[..., Lines]) -> None:
    """Bound context is in every line; a field given to the call overrides it."""
    lines = configure()
    with context(request_id="r1", user_id="u1", session_id="s1"):
        logs.get_logger("a").info("one")
        logs.get_logger("a").info("two", user_id="u2")
    one, two = lines()
    assert (one["request_id"], one["user_id"], one["session_id"]) == ("r1", "u1", "s1")
    assert two["user_id"] == "u2"


async def test_context_reaches_tasks_and_threads(configure: Callable[..., Lines]) -> None:
    """Lines written from tasks and threads started inside a block carry its request id."""
    propagate_to_threads()
    lines = configure()
    log = logs.get_logger("a")

    async def task() -> None:
        log.info("from task")

    with context(request_id="r9"):
        await asyncio.create_task(task())
        thread = threading.Thread(target=lambda: log.info("from thread"))
        thread.start()
        thread.join()
    assert [(line["event"], line["request_id"]) for line in lines()] == [("from task", "r9"), ("from thread", "r9")]


def test_exception_becomes_structured(configure: Callable[..., Lines]) -> None:
    """exc_info turns into type, message, frames and the cause chain."""
    lines = configure()
    try:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("bad order") from exc
    except ValueError:
        logs.get_logger("a").exception("failed")
    (line,) = lines()
    exc = line["exception"]
    assert (exc["type"], exc["message"], exc["caused_by"]["type"]) == ("ValueError", "bad order", "KeyError")
    assert exc["frames"][-1]["function"] == "test_exception_becomes_structured"
    assert line["level"] == "error" and line["category"] == "error"


def test_secrets_are_redacted_in_lines(configure: Callable[..., Lines]) -> None:
    """Secret fields and secrets inside messages never reach the output."""
    lines = configure()
    logs.get_logger("a").info("login with Bearer abcdef123456", password="hunter2", data={"token": "t0k"})
    (line,) = lines()
    text = json.dumps(line)
    assert "hunter2" not in text and "abcdef123456" not in text and "t0k" not in text


def test_no_injection_through_newlines(configure: Callable[..., Lines]) -> None:
    """Newlines and control characters in messages and keys cannot forge a line or a field."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="json"), stream=buffer)
    forged = 'ok\n{"level": "critical", "event": "forged"}\r\x1b[2J'
    logs.get_logger("a").info(forged, **{"k\n\"level\": \"x": forged})
    raw = buffer.getvalue()
    assert raw.count("\n") == 1
    line = json.loads(raw)
    assert line["event"] == forged and line["level"] == "info"


def test_console_format_is_one_line_and_escaped(configure: Callable[..., Lines]) -> None:
    """The console format prints one escaped line per record."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="console"), stream=buffer)
    logs.get_logger("app").warning("two\nlines", user="bob\x1b[31m")
    out = buffer.getvalue()
    assert out.count("\n") == 1
    assert "two\\nlines" in out and "WARNING" in out and "\x1b[31m" not in out.split("user=")[1]


def test_stdlib_loggers_come_out_the_same_way(configure: Callable[..., Lines]) -> None:
    """Standard library records (with extra fields and context) use the same pipeline."""
    lines = configure()
    with context(request_id="r5"):
        logging.getLogger("some.library").warning("disk at %d%%", 91, extra={"mount": "/data"})
    (line,) = lines()
    assert {k: line[k] for k in ("logger", "event", "level", "mount", "request_id")} == {
        "logger": "some.library", "event": "disk at 91%", "level": "warning", "mount": "/data", "request_id": "r5"}


def test_sqlalchemy_logs_are_bridged(configure: Callable[..., Lines], tmp_path: Path) -> None:
    """SQLAlchemy's engine log, from a real query, comes out as kansoku JSON lines."""
    lines = configure()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 42"))
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
        engine.dispose()
    assert any(line["logger"] == "sqlalchemy.engine.Engine" and "select 42" in line["event"] for line in lines())


def test_uvicorn_logs_are_bridged(configure: Callable[..., Lines], port: int) -> None:
    """A real uvicorn server's own log records come out as kansoku JSON lines."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info")  # installs uvicorn's handlers
    lines = configure()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    server.should_exit = True
    thread.join(10)
    events = [(line["logger"], line["event"]) for line in lines()]
    assert ("uvicorn.error", "Application startup complete.") in events
    assert not any("color_message" in line for line in lines())  # uvicorn's ANSI copy is dropped


def test_decorators_time_sync_and_async_and_reraise(configure: Callable[..., Lines]) -> None:
    """log_execution_time and log_database_operation log durations and failures, re-raising them."""
    lines = configure()

    @logs.log_execution_time("compute")
    def compute(x: int) -> int:
        return x * 2

    @logs.log_database_operation("insert_user", table="users", threshold_ms=0.0)
    async def insert() -> str:
        await asyncio.sleep(0.001)
        return "ok"

    @logs.log_execution_time()
    async def broken() -> None:
        raise LookupError("nope")

    assert compute(2) == 4
    assert asyncio.run(insert()) == "ok"
    with pytest.raises(LookupError):
        asyncio.run(broken())
    done, slow, failed = lines()
    assert (done["event"], done["category"], done["success"]) == ("compute completed", "performance", True)
    assert (slow["level"], slow["table"], slow["category"]) == ("warning", "users", "database")
    assert slow["slow_operation"] is True
    assert failed["level"] == "error" and failed["exception"]["type"] == "LookupError"
    assert failed["operation"].endswith("broken")


def _file_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(log_format="json", log_dir=tmp_path / "logs", service_name="svc", **overrides)


def test_files_rotate_by_time_and_errors_by_size(tmp_path: Path) -> None:
    """The application log rotates on its interval; the error log rotates by size and keeps N files."""
    settings = _file_settings(tmp_path, log_rotate_when="S", error_log_max_bytes=1024, error_log_backups=2)
    logs.configure_logging(settings, stream=io.StringIO())
    log = logs.get_logger("a")
    try:
        log.info("first")
        logs.flush()
        time.sleep(1.1)
        for i in range(60):
            log.error("an error line that takes some room", i=i, padding="x" * 40)
        logs.flush()
    finally:
        logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    rotated_app = [n for n in names if n.startswith("svc.log.")]
    assert rotated_app, names
    error_logs = sorted(n for n in names if n.startswith("svc.error.log"))
    assert error_logs == ["svc.error.log", "svc.error.log.1", "svc.error.log.2"]
    app_text = "".join((tmp_path / "logs" / n).read_text() for n in names if n.startswith("svc.log"))
    assert app_text.count("\n") == 61


def test_unwritable_directory_reported_once_and_stdout_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log directory that cannot be created is reported on stderr; stdout logging carries on."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    buffer = io.StringIO()
    from kansoku import _safety

    _safety.set_strict(False)
    logs.configure_logging(load_settings(log_format="json", log_dir=blocker / "logs"), stream=buffer)
    logs.get_logger("a").info("still here")
    assert "cannot write logs" in capsys.readouterr().err
    assert json.loads(buffer.getvalue())["event"] == "still here"
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))


def test_full_disk_reported_once_and_stdout_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Writes failing with ENOSPC are reported once on stderr and counted; stdout continues."""
    from kansoku import _safety

    _safety.set_strict(False)
    (tmp_path / "logs").mkdir()
    os.symlink("/dev/full", tmp_path / "logs" / "svc.log")
    buffer = io.StringIO()
    before = _safety.internal_error_count("log-files")
    logs.configure_logging(_file_settings(tmp_path), stream=buffer)
    for i in range(3):
        logs.get_logger("a").info("line", i=i)
    logs.flush()
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
    assert capsys.readouterr().err.count("writing log files failed") == 1
    assert _safety.internal_error_count("log-files") > before
    assert len(buffer.getvalue().splitlines()) == 3


def test_stdout_lines_are_written_by_the_flusher(capsys: pytest.CaptureFixture[str]) -> None:
    """Lines for stdout are queued and written in order by the flusher (or an explicit flush)."""
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
    for i in range(100):
        logs.get_logger("a").info("queued", i=i)
    logs.flush()
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["i"] for line in out] == list(range(100))


def test_line_writer_drops_and_counts_past_its_bound() -> None:
    """Past max_pending lines the writer drops new ones and counts them instead of growing."""
    from kansoku.logs._files import LineWriter

    written: list[bytes] = []
    writer = LineWriter(written.append, interval=3600, max_pending=3)
    for i in range(5):
        writer.write(b"%d\n" % i)
    writer.flush()
    assert written == [b"0\n1\n2\n"] and writer.dropped == 2


def test_bound_context_is_redacted_and_never_stale(configure: Callable[..., Lines]) -> None:
    """Secrets in bound context are masked; a rebound context shows its new values at once."""
    lines = configure()
    log = logs.get_logger("a")
    with context(api_key="k-123", note="first"):
        log.info("one")
        log.info("two")
    with context(api_key="k-456", note="second"):
        log.info("three")
    one, two, three = lines()
    assert one["api_key"] == two["api_key"] == three["api_key"] == "[REDACTED]"
    assert (one["note"], two["note"], three["note"]) == ("first", "first", "second")


def test_logger_bound_fields_are_redacted(configure: Callable[..., Lines]) -> None:
    """Fields bound on a logger (get_logger(..., **fields), .bind) are redacted like call fields."""
    lines = configure()
    logs.get_logger("a", password="p-1").bind(dsn="postgresql://u:pw@h/db", component="c").info("x")
    (line,) = lines()
    assert line["password"] == line["dsn"] == "[REDACTED]" and line["component"] == "c"


def test_forked_child_does_not_repeat_the_parents_lines() -> None:
    """A child forked with lines still queued writes only its own, through a flusher of its own."""
    from kansoku.logs._files import LineWriter

    read, write = os.pipe()
    writer = LineWriter(lambda data: os.write(write, data), interval=0.01)
    writer.write(b"parent\n")
    pid = os.fork()
    if pid == 0:  # the child: its own line must arrive, written by its own flusher thread
        writer.write(b"child\n")
        time.sleep(0.5)
        os._exit(0)
    os.waitpid(pid, 0)
    writer.flush()
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert sorted(pipe.read().splitlines()) == [b"child", b"parent"]
