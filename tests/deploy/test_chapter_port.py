"""The chapter's four example services, ported by following docs/from-the-chapter.md (docs/examples/chapter/),
each served by real uvicorn: logged failures are stored events, custom metrics are served, the trace
level is a ceiling."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ..conftest import free_port

CHAPTER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "chapter"
SERVICES = ("users", "orders", "data_processing", "payments")
# The lines the ported code writes with an exception: the chapter's `error=e`, the `exc_info=e` the
# docs recommend, and the failures the two logging decorators report.
LOGGED_FAILURES = {
    "users": {"User creation failed", "user_creation failed", "get_user_by_id failed"},  # twice each
    "data_processing": {"Failed to process item 1"},
    "payments": {"Payment declined"},
}


@dataclass
class Service:
    """One ported service under uvicorn: its URL, process, log file and SQLite store."""

    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    db: Path
    responses: list[httpx.Response] = field(default_factory=list)

    def post(self, path: str, body: Any) -> httpx.Response:
        response = httpx.post(f"{self.base}{path}", json=body, timeout=30)
        self.responses.append(response)
        return response

    def lines(self) -> list[dict[str, Any]]:
        """The service's JSON log lines."""
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines() if line.startswith(b"{")]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            return db.execute(sql).fetchall()


def _wait_health(service: Service) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited: {service.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{service.base}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{service.name} did not answer /health within 60 s")


def _stop(service: Service) -> None:
    """SIGTERM: uvicorn runs the lifespan shutdown, which flushes what kansoku accepted."""
    service.process.terminate()
    try:
        service.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(timeout=10)


@contextlib.contextmanager
def chapter_services(tmp_path: Path, trace_level: str, names: tuple[str, ...] = SERVICES
                     ) -> Iterator[dict[str, Service]]:
    """The ported services, each its own uvicorn process and store, started together."""
    services: dict[str, Service] = {}
    try:
        for name in names:
            port, log, db = free_port(), tmp_path / f"{name}.log", tmp_path / f"{name}.db"
            env = {**os.environ, "KANSOKU_DATABASE_URL": f"sqlite:///{db}", "KANSOKU_LOG_FORMAT": "json",
                   "KANSOKU_TRACE_LEVEL": trace_level}
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", f"{name}:app", "--app-dir", str(CHAPTER), "--host",
                     "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
            services[name] = Service(name, f"http://127.0.0.1:{port}", process, log, db)
        for service in services.values():
            _wait_health(service)
        yield services
    finally:
        for service in services.values():
            _stop(service)


def _process_data(service: Service) -> None:
    """The chapter's dataset: a good item, one whose `data` cannot be copied, one without data."""
    done = service.post("/process-data", [{"id": 1, "data": {"a": 1}}, {"id": 2, "data": 5}, {"id": 3}])
    assert done.status_code == 200 and done.json()["count"] == 2


def _drive(services: dict[str, Service]) -> dict[str, Any]:
    """The chapter's calls, good and failing; what the services answered that is read before they stop."""
    users, orders, data, payments = (services[name] for name in SERVICES)
    assert users.post("/users", {"email": "ada@example.com"}).status_code == 200
    assert users.post("/users", {"name": "no e-mail"}).status_code == 500
    assert users.post("/users", {"email": "bob@db-down.example"}).status_code == 500
    for amount in (12.5, 30.0):
        assert orders.post("/orders", {"amount": amount}).status_code == 200
    assert orders.post("/orders", {}).status_code == 500
    _process_data(data)
    assert payments.post("/payments", {"amount": 50, "card_number": "4111111111111111"}).status_code == 200
    for bad in ({"amount": 0, "card_number": "4111111111111111"}, {"amount": 20000, "card_number": "4242"}):
        assert payments.post("/payments", bad).status_code == 500
    assert payments.post("/payments", {"amount": 20, "card_number": "4000000000000002"}).status_code == 402
    return {"metrics": httpx.get(f"{orders.base}/metrics", timeout=10).text,
            "performance": {name: _performance(s) for name, s in services.items()}}


def _performance(service: Service) -> dict[str, Any]:
    functions: dict[str, Any] = httpx.get(f"{service.base}/kansoku/api/debug/performance", timeout=10).json()[
        "functions"]
    return functions


def _contains_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_contains_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_contains_key(v, key) for v in value)
    return False


def _stored_events(service: Service) -> dict[str, dict[str, Any]]:
    return {event_id: orjson.loads(data) for event_id, data in
            service.rows("SELECT event_id, data FROM kansoku_error_events")}


def _failed_item(service: Service) -> dict[str, Any]:
    return next(e for e in _stored_events(service).values() if e["exception_type"] == "AttributeError")


@pytest.mark.slow
def test_ported_services_at_error_only(tmp_path: Path) -> None:
    """With KANSOKU_TRACE_LEVEL=ERROR_ONLY: every error=e / exc_info=e line (and each logging decorator's
    failure line) carries the event_id of a stored event, as does every 500 and the 402; each metric the
    port makes at import time is on /metrics; timed calls are in the performance summary; and no locals,
    no argument attributes, no spans of traced functions anywhere, functions marked VERBOSE included."""
    with chapter_services(tmp_path, "ERROR_ONLY") as services:
        seen = _drive(services)
    for name, messages in LOGGED_FAILURES.items():
        lines = [line for line in services[name].lines() if line["event"] in messages]
        assert {line["event"] for line in lines} == messages, name
        assert len(lines) == len(messages) * (2 if name == "users" else 1), name
        stored = _stored_events(services[name])
        for line in lines:
            assert line["level"] == "error" and line["exception"]["type"], line
            assert line.get("event_id") in stored, f"{name}: {line['event']!r} has no stored event"
    for service in services.values():
        stored = _stored_events(service)
        for response in service.responses:
            if response.status_code >= 400:
                assert response.json()["event_id"] in stored, f"{service.name}: {response.text}"
    declined = next(r for r in services["payments"].responses if r.status_code == 402).json()["event_id"]
    assert _stored_events(services["payments"])[declined]["exception_type"].endswith("PaymentDeclined")

    metrics = seen["metrics"]
    for sample in ('revenue_total{currency="USD"} 42.5', 'inventory_level{product_id="prod_1"} 100.0',
                   'order_value_bucket{currency="USD",le="100.0"} 2.0', 'orders_created_total{channel="api"} 2.0',
                   'function_calls_total{function="create_order",module="order",status="success"} 2.0',
                   'function_calls_total{function="create_order",module="order",status="KeyError"} 1.0'):
        assert sample in metrics, f"{sample!r} not on /metrics"
    assert seen["performance"]["orders"]["order.create_order"]["count"] == 3.0

    for service in services.values():
        assert not any(_contains_key(event, "locals") for event in _stored_events(service).values()), service.name
        assert not any(_contains_key(line, "locals") for line in service.lines()), service.name
        spans = service.rows("SELECT name, attributes FROM kansoku_spans")
        assert spans, f"{service.name}: the request spans are stored"
        assert not [a for _, a in spans if "kansoku.args." in a], service.name
        assert not [n for n, _ in spans if n.startswith("data_processing.")], service.name
    assert not [name for name in seen["performance"]["data_processing"] if name.startswith("data_processing.")]
    assert _failed_item(services["data_processing"])["message"] == "'int' object has no attribute 'copy'"

    users = services["users"]
    refused = next(e for e in _stored_events(users).values() if e["exception_type"] == "ConnectionRefusedError")
    assert refused["category"] == "database", "a refused database connection is the database's"
    written = [line for line in users.log.read_text().splitlines() if "user row written" in line]
    # Two calls reach the write (the one without an e-mail fails after it): two lines, JSON, no text copy.
    assert len(written) == 2 and all(orjson.loads(line)["logger"] == "users.db" for line in written), written


@pytest.mark.slow
def test_the_same_port_at_verbose_captures_locals(tmp_path: Path) -> None:
    """The contrast that makes the ERROR_ONLY test mean something: at VERBOSE the data service's traced
    functions are spans with their arguments, in the summary, and the failing item's event has locals."""
    with chapter_services(tmp_path, "VERBOSE", ("data_processing",)) as services:
        service = services["data_processing"]
        _process_data(service)
        performance = _performance(service)
    assert performance["data_processing.DataProcessor._process_item"]["count"] == 3.0
    assert _contains_key(_failed_item(service), "locals")
    spans = {n: orjson.loads(a) for n, a in service.rows("SELECT name, attributes FROM kansoku_spans")}
    assert "kansoku.args.data" in spans["data_processing.DataProcessor.process_large_dataset"]
