"""A seeded SQLite store and the web app over it, for the dashboard's tests.

`seed_store(engine, now)` inserts rows straight into the tables (groups, events, buckets, spans,
request statistics, outbox, silences), so the pages are tested against known data without the
error tracker or the alert engine running.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

from kansoku.debug import Debugger
from kansoku.settings import Settings, load_settings
from kansoku.store import tables as t
from kansoku.store.logs import FTS_DDL
from kansoku.web.app import build_web_app

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
TOKEN = "correct-horse-battery-staple-42"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
EVENT_IDS = ["e1" + "0" * 30, "e2" + "0" * 30, "e3" + "0" * 30]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _group(**values: Any) -> dict[str, Any]:
    base = {
        "group_key": values["title"][:8].encode().hex().ljust(16, "0") + str(values.get("id", 0)),
        "fingerprint_parts": ["ValueError", "app.orders:create_order", "app.orders:validate"],
        "culprit": "app.orders.create_order", "exception_type": "ValueError", "message": "",
        "severity": "high", "category": "business_logic", "service": "shop", "environment": "production",
        "status": "unresolved", "first_seen": NOW - 86400 * 3, "last_seen": NOW - 60, "count": 1,
        "users_affected": 0, "regressed": False, "regressed_at": None, "resolved_at": None,
        "resolved_in_release": None, "first_release": "1.0.0", "last_release": "1.2.0", "last_event_id": None,
    }
    return {**base, **values}


def _event_data(event_id: str, ts: float, message: str) -> dict[str, Any]:
    frame = {"filename": "app/orders.py", "abs_path": "/srv/app/orders.py", "module": "app.orders",
             "function": "create_order", "lineno": 42, "in_app": True,
             "pre_context": ["def create_order(data):", "    total = price(data)"],
             "context_line": "    raise ValueError(f'amount {total} over limit')",
             "post_context": ["", "def price(data):"],
             "locals": {"total": 1250.5, "password": "[REDACTED]", "data": {"card": "[REDACTED]"}}}
    library = {"filename": "starlette/routing.py", "module": "starlette.routing", "function": "handle",
               "lineno": 73, "in_app": False}
    return {
        "event_id": event_id, "timestamp": ts, "exception_type": "ValueError", "message": message,
        "exceptions": [
            {"type": "KeyError", "module": "builtins", "message": "'limit'", "relation": "cause",
             "frames": [{**frame, "function": "validate", "lineno": 30, "locals": {"key": "limit"}}]},
            {"type": "ValueError", "module": "builtins", "message": message, "relation": "",
             "frames": [library, frame]},
        ],
        "culprit": "app.orders.create_order", "fingerprint_parts": ["ValueError", "app.orders:create_order"],
        "severity": "high", "category": "business_logic", "level": "error",
        "request": {"method": "POST", "route": "/orders", "url": "http://shop.test/orders?x=1",
                    "headers": {"user-agent": "pytest", "authorization": "[REDACTED]"},
                    "client": "203.0.113.7", "status_code": 500},
        "user": {"id": "u-17", "email": "[REDACTED]"},
        "tags": {"region": "eu-west", "plan": "pro" if event_id != EVENT_IDS[2] else "free"},
        "extra": {"order_id": 981},
        "request_id": "req-" + event_id[:6], "trace_id": TRACE_ID, "span_id": "00f067aa0ba902b7",
        "breadcrumbs": [{"timestamp": ts - 2, "category": "http", "level": "info",
                         "message": "GET /cart", "data": {"status": 200}}],
        "service": "shop", "environment": "production", "release": "1.2.0", "host": "web-1",
        "handled": False, "mechanism": "middleware",
    }


def seed_store(engine: sa.Engine, now: float = NOW) -> dict[str, int]:
    """Insert the known data set; returns ids by name."""
    t.metadata.create_all(engine)
    with engine.begin() as conn:  # the log store's search index comes with its migration, not metadata
        conn.exec_driver_sql(FTS_DDL)
    groups = [
        _group(id=1, title="ValueError: amount over limit", count=42, users_affected=3,
               message="amount 1250.5 over limit", last_event_id=EVENT_IDS[2]),
        _group(id=2, title=f"RuntimeError: {XSS_SCRIPT}", exception_type="RuntimeError", message=XSS_SCRIPT,
               culprit=XSS_IMG, severity="critical", category="security", count=5, first_seen=now - 3600),
        _group(id=3, title="KeyError: 'sku'", exception_type="KeyError", service="billing",
               environment="staging", status="resolved", resolved_at=now - 7200, count=7, severity="medium"),
        _group(id=4, title="TimeoutError: upstream timed out", exception_type="TimeoutError",
               category="performance", status="ignored", count=12, severity="low"),
        _group(id=5, title="ConnectionError: db went away", exception_type="ConnectionError",
               regressed=True, regressed_at=now - 600, count=9, category="database"),
    ]
    groups += [_group(id=10 + i, title=f"LookupError: filler number {i:02d}", exception_type="LookupError",
                      count=i + 1, last_seen=now - 3600 - i * 60, first_seen=now - 86400 * 10, severity="low")
                for i in range(30)]
    events = [
        {"event_id": EVENT_IDS[i], "group_id": 1, "timestamp": now - 300 + i * 100, "severity": "high",
         "category": "business_logic", "release": "1.2.0", "user_id": "u-17", "request_id": None,
         "trace_id": TRACE_ID, "data": _event_data(EVENT_IDS[i], now - 300 + i * 100, "amount 1250.5 over limit")}
        for i in range(3)
    ]
    xss = _event_data("x" * 32, now - 120, XSS_SCRIPT)
    xss["exceptions"][-1].update(type="RuntimeError", message=XSS_SCRIPT)
    xss["tags"] = {"payload": XSS_IMG}
    events.append({"event_id": "x" * 32, "group_id": 2, "timestamp": now - 120, "severity": "critical",
                   "category": "security", "release": "1.2.0", "user_id": None, "request_id": None,
                   "trace_id": None, "data": xss})
    hour = int(now // 3600)
    buckets = [{"group_id": 1, "hour": hour - h, "count": 3 + h % 4} for h in range(0, 48, 3)]
    buckets += [{"group_id": 2, "hour": hour, "count": 5}]
    spans = _spans(now)
    stats = [{"minute": int(now // 60) - m, "service": "shop", "instance": inst, "requests": 20,
              "errors_4xx": 1, "errors_5xx": 1 if m % 10 == 0 else 0, "duration_sum": 1.2,
              "buckets": {str(b): c for b, c in zip(BUCKETS, [2, 6, 10, 14, 17, 19, 20, 20, 20, 20, 20],
                                                     strict=True)} | {"+Inf": 20}}
             for m in range(120) for inst in ("web-1:11", "web-2:12")]
    outbox = [
        {"id": 1, "created_at": now - 900, "channel": "ops", "rule": "critical_errors", "group_key": "g2",
         "kind": "trigger", "idempotency_key": "k1", "payload": {"title": "x"}, "status": "sent",
         "attempts": 1, "next_attempt_at": now - 900, "sent_at": now - 899, "last_error": None},
        {"id": 2, "created_at": now - 600, "channel": "pager", "rule": "critical_errors", "group_key": "g2",
         "kind": "trigger", "idempotency_key": "k2", "payload": {"title": "x"}, "status": "dead",
         "attempts": 8, "next_attempt_at": now - 60, "sent_at": None,
         "last_error": "HTTP 503 from events.pagerduty.com"},
    ]
    with engine.begin() as conn:
        conn.execute(t.error_groups.insert(), groups)
        conn.execute(t.error_events.insert(), events)
        conn.execute(t.error_buckets.insert(), buckets)
        conn.execute(t.spans.insert(), spans)
        conn.execute(t.request_stats.insert(), stats)
        conn.execute(t.outbox.insert(), outbox)
        conn.execute(t.delivery_attempts.insert(), [
            {"outbox_id": 2, "at": now - 70, "ok": False, "status_code": 503, "error": "HTTP 503",
             "duration_ms": 12.0}])
        conn.execute(t.silences.insert(), [
            {"created_at": now - 100, "ends_at": now + 3600, "rule": "performance_degradation",
             "group_key": None, "tag": None, "text": None, "comment": "deploy window", "created_by": "ops"}])
    return {"group": 1, "xss_group": 2, "resolved_group": 3, "dead_outbox": 2}


def _spans(now: float) -> list[dict[str, Any]]:
    def span(span_id: str, parent: str | None, name: str, start: float, ms: float, **extra: Any) -> dict[str, Any]:
        return {"span_id": span_id, "trace_id": TRACE_ID, "parent_id": parent, "name": name,
                "kind": extra.pop("kind", "INTERNAL"), "service": "shop", "start_time": start,
                "end_time": start + ms / 1000, "duration_ms": ms, "status": extra.pop("status", "OK"),
                "status_message": extra.pop("status_message", None),
                "attributes": extra.pop("attributes", {}), "events": [], "is_root": parent is None}

    base = now - 300
    return [
        span("a" * 16, None, "POST /orders", base, 180.0, kind="SERVER",
             attributes={"http.route": "/orders", "http.status_code": 500}, status="ERROR"),
        span("b" * 16, "a" * 16, "SELECT orders", base + 0.01, 40.0, kind="CLIENT",
             attributes={"db.statement": "SELECT * FROM orders WHERE id = ?"}),
        span("c" * 16, "a" * 16, "create_order", base + 0.06, 110.0, status="ERROR",
             status_message="ValueError: amount over limit"),
        span("d" * 16, "c" * 16, "POST payments", base + 0.07, 60.0, kind="CLIENT"),
        span("e" * 16, None, "GET /health-check", now - 30, 3.0, kind="SERVER",
             attributes={"http.route": "/health-check"}) | {"trace_id": "f" * 32},
    ]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A seeded SQLite store in a temporary file."""
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'kansoku.db'}")
    seed_store(eng)
    yield eng
    eng.dispose()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for the tests: strict, a store under tmp_path, alert channels with secrets."""
    alerts = {"channels": [
        {"name": "ops", "type": "webhook", "url": "https://hooks.example.com/kansoku?sig=abc",
         "secret": "webhook-signing-secret"},
        {"name": "pager", "type": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/XYZSECRET"},
    ], "rules": [{"name": "critical_errors", "severity_threshold": "critical", "channels": ["ops", "pager"]}]}
    values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'kansoku.db'}", "strict": True,
                              "alerts": alerts, "service_name": "shop"}
    return load_settings(**{**values, **overrides})


def make_runtime(settings: Settings, engine: sa.Engine | None, *, debugger: bool = True) -> Any:
    """The parts of a runtime the web app reads (no threads, no tracker)."""
    dbg = None
    if debugger:
        dbg = Debugger(settings, clock=lambda: NOW)
        for seconds in (0.010, 0.012, 0.200):
            dbg.performance.record("app.orders.create_order", seconds)
        dbg.performance.record("app.cart.total", 0.001)
    return types.SimpleNamespace(settings=settings, engine=engine, store=None, errors=None,
                                 debugger=dbg, alerts=None)


AppFactory = Callable[..., Any]


@pytest.fixture
def make_app(tmp_path: Path, engine: sa.Engine) -> AppFactory:
    """Build the web app over the seeded store at the fixed time NOW; keywords go to the settings."""
    def factory(*, debugger: bool = True, **overrides: Any) -> Any:
        runtime = make_runtime(make_settings(tmp_path, **overrides), engine, debugger=debugger)
        return build_web_app(runtime, clock=lambda: NOW)

    return factory


def asgi_client(app: Any, host: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client calling `app` in-process as a client at `host`, under the /kansoku prefix."""
    transport = httpx.ASGITransport(app=app, client=(host, 5555), root_path="/kansoku")
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/kansoku", **kwargs)


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the loopback-only app (no token), as 127.0.0.1."""
    async with asgi_client(make_app()) as c:
        yield c


@pytest.fixture(scope="session")
def seeded() -> types.SimpleNamespace:
    """The seeded data's constants and helpers, for the test modules (which import nothing from here)."""
    return types.SimpleNamespace(NOW=NOW, TOKEN=TOKEN, XSS_SCRIPT=XSS_SCRIPT, XSS_IMG=XSS_IMG, TRACE_ID=TRACE_ID,
                                 EVENT_IDS=EVENT_IDS, seed_store=seed_store, make_settings=make_settings,
                                 make_runtime=make_runtime, asgi_client=asgi_client, ServerThread=ServerThread,
                                 build_web_app=build_web_app)


# --- a real server for the browser tests ----------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at Debian's chromium (no `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run browser tests last in the session: Playwright's sync API leaves an event loop running in
    the main thread (its session fixture), and pytest-asyncio cannot start one for later async tests."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-base-url's fixture, which warns on pytest 9; the tests build their own URLs."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 from a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-dashboard", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, sa.Engine]]:
    """The web app under /kansoku (token required) over a seeded store, served by uvicorn."""
    directory = tmp_path_factory.mktemp("browser")
    eng = sa.create_engine(f"sqlite:///{directory / 'kansoku.db'}")
    seed_store(eng)
    settings = make_settings(directory, dashboard_token=TOKEN)
    web = build_web_app(make_runtime(settings, eng), clock=lambda: NOW)

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse("/kansoku/")

    # Mount extends root_path by the prefix, as KansokuMiddleware does for an instrumented app.
    app = Starlette(routes=[Route("/", home), Mount("/kansoku", app=web)])
    with ServerThread(app) as running:
        yield f"http://127.0.0.1:{running.port}/kansoku", eng
    eng.dispose()
