"""Celery with a real redis-server broker and real worker processes (solo and prefork pools)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kansoku import runtime
from kansoku.integrations import celery as kansoku_celery
from kansoku.store import create_store_engine, queries
from kansoku.testing import isolated_runtime

pytestmark = pytest.mark.slow
APP_DIR = Path(__file__).parent / "celery_app"
CONSUMER, SERVER = 5, 2  # OTLP span kinds
wait_for: Callable[..., Any]


@pytest.fixture(autouse=True)
def _poll(poll: Callable[..., Any]) -> None:
    """The shared `poll` (wait with a deadline) as this module's `wait_for`."""
    global wait_for
    wait_for = poll


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def broker(redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty Redis database as broker and result backend; the tasks module importable."""
    Redis.from_url(redis_server.url).flushdb()
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)
    monkeypatch.syspath_prepend(str(APP_DIR))
    yield redis_server.url
    kansoku_celery.uninstrument_celery()
    for name in ("kansoku_celery_tasks", "kansoku_celery_worker"):
        sys.modules.pop(name, None)


class Worker:
    """A `celery worker` subprocess; `metrics()` scrapes the /metrics it serves."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the worker's /metrics, by (name, sorted labels)."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5.0).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def up(self) -> bool:
        """Whether the worker serves its metrics yet (and has not died)."""
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def start_worker(broker: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """`start_worker(pool, concurrency, **env)`: a worker on the test broker, stopped (warm) at the end."""
    started: list[Worker] = []

    def start(pool: str = "solo", concurrency: int = 1, **env: str) -> Worker:
        port = free_port()
        log = tmp_path / f"worker-{len(started)}.log"
        environment = {**os.environ, "CELERY_BROKER_URL": broker, "PYTHONPATH": str(APP_DIR),
                       "KANSOKU_WORKER_METRICS_PORT": str(port), "KANSOKU_LOG_FORMAT": "json",
                       "KANSOKU_DATABASE_URL": f"sqlite:///{tmp_path / 'kansoku.db'}", "KANSOKU_DASHBOARD": "false",
                       "OTEL_BSP_SCHEDULE_DELAY": "100", **env}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "kansoku_celery_worker", "worker", "--pool", pool,
                 "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-Q", "kansoku-tests", "-n", f"w{len(started)}@%h"],
                cwd=tmp_path, env=environment, stdout=out, stderr=subprocess.STDOUT)
        worker = Worker(process, port, log)
        started.append(worker)
        wait_for(worker.up, timeout=60.0)
        return worker

    yield start
    for worker in started:
        worker.process.send_signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(10)


@contextmanager
def web_app(tmp_path: Path, serve_app: Any, **settings: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """A Starlette app, instrumented and served, whose routes enqueue tasks; yields (client, tasks module)."""
    with isolated_runtime(tmp_path / "web", dashboard=False, **settings) as made:
        import kansoku_celery_tasks as tasks  # made after the runtime: instrument() finds the Celery app

        async def enqueue(request: Request) -> JSONResponse:
            kind = request.path_params["kind"]
            if kind == "chain":
                result = (tasks.add.s(1, 2) | tasks.add.s(3)).delay()
            elif kind == "flaky":
                result = tasks.flaky.delay()
            else:
                result = tasks.add.delay(2, 3)
            return JSONResponse({"id": result.id})

        app = Starlette(routes=[Route("/enqueue/{kind}", enqueue, methods=["POST"])])
        instrumented = runtime.instrument(app)
        assert kansoku_celery.instrumented(tasks.app)
        with serve_app(instrumented) as base_url, httpx.Client(base_url=base_url, timeout=10.0) as client:
            yield client, tasks
        assert made.tracer_provider is not None
        made.tracer_provider.force_flush()


def test_one_trace_from_the_request_to_the_task_through_chains_and_retries(
        tmp_path: Path, start_worker: Callable[..., Worker], otlp_receiver: Any, serve_app: Any) -> None:
    """A request enqueuing a task, a chain and a retried task: every task run is in the request's trace."""
    worker = start_worker("solo", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url, OTEL_SERVICE_NAME="worker")
    with web_app(tmp_path, serve_app, otlp_endpoint=otlp_receiver.url, service_name="web") as (client, tasks):
        ids = {kind: client.post(f"/enqueue/{kind}").json()["id"] for kind in ("one", "chain", "flaky")}
        assert tasks.add.AsyncResult(ids["one"]).get(timeout=30) == 5
        assert tasks.flaky.AsyncResult(ids["flaky"]).get(timeout=30) == 2
        wait_for(lambda: worker.value("kansoku_job_runs_total", job="tasks.add", status="ok") == 3.0, timeout=30)
    assert worker.value("kansoku_job_runs_total", job="tasks.flaky", status="retry") == 2.0
    assert worker.value("kansoku_job_retries_total", job="tasks.flaky") == 2.0

    def runs() -> list[dict[str, Any]]:
        return [s for s in otlp_receiver.spans() if s["kind"] == CONSUMER]

    wait_for(lambda: len(runs()) == 6, timeout=30)  # add, add+add (chain), flaky x3
    servers = {s["attributes"]["http.route"]: s for s in otlp_receiver.spans() if s["kind"] == SERVER}
    assert len(servers) == 1
    (server,) = servers.values()
    requests = [s for s in otlp_receiver.spans() if s["kind"] == SERVER]
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for run in runs():
        by_trace.setdefault(run["trace_id"], []).append(run)
    request_traces = {s["trace_id"] for s in requests}
    assert set(by_trace) <= request_traces and len(by_trace) == 3
    first = next(s for s in runs() if s["attributes"]["messaging.message.id"] == ids["one"])
    one_request = next(s for s in requests if s["trace_id"] == first["trace_id"])
    assert first["parent_span_id"] == one_request["span_id"] and first["service"] == "worker"
    assert server["service"] == "web"
    assert {k: first["attributes"][k] for k in ("messaging.system", "celery.task_name", "celery.retries",
                                                "messaging.destination.name", "kansoku.job.status")} == {
        "messaging.system": "celery", "celery.task_name": "tasks.add", "celery.retries": 0,
        "messaging.destination.name": "kansoku-tests", "kansoku.job.status": "ok"}
    flaky = sorted((s for s in runs() if s["name"] == "tasks.flaky"), key=lambda s: s["attributes"]["celery.retries"])
    assert [s["attributes"]["kansoku.job.status"] for s in flaky] == ["retry", "retry", "ok"]
    assert len({s["trace_id"] for s in flaky}) == 1
    assert flaky[1]["parent_span_id"] == flaky[0]["span_id"]  # each retry is published by the run before it
    lines = [line for line in worker.log.read_text().splitlines() if '"adding"' in line]
    assert len(lines) == 3 and all('"task_name":"tasks.add"' in line and '"task_id":' in line
                                   and '"trace_id":' in line for line in lines)
    assert f'"task_id":"{ids["one"]}"' in "".join(lines) and f'"trace_id":"{first["trace_id"]}"' in "".join(lines)


def test_a_hundred_failures_are_one_group_named_by_the_task(tmp_path: Path, start_worker: Callable[..., Worker],
                                                              broker: str) -> None:
    """100 failing runs of a task are one error group, culprit the task's name; kwargs redacted at DETAILED."""
    worker = start_worker("solo", KANSOKU_TRACE_LEVEL="DETAILED")
    import kansoku_celery_tasks as tasks

    for n in range(100):
        tasks.fail.delay(n, password="hunter2")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kansoku.db'}")

    def stored() -> int:
        items = queries.list_groups(engine)["items"]
        return sum(group["count"] for group in items)

    wait_for(lambda: stored() == 100, timeout=60)
    (group,) = queries.list_groups(engine)["items"]
    assert (group["culprit"], group["exception_type"], group["count"]) == ("tasks.fail", "ValueError", 100)
    detail = queries.get_group(engine, group["id"], events=1)
    assert detail is not None
    event = detail["events"][0]
    assert event["extra"]["arguments"]["kwargs"] == {"password": "[REDACTED]"}
    assert event["tags"]["job"] == "tasks.fail" and event["mechanism"] == "job"
    assert worker.value("kansoku_job_failures_total", job="tasks.fail", exception="ValueError") == 100.0
    engine.dispose()


def test_arguments_are_not_captured_at_performance(tmp_path: Path, start_worker: Callable[..., Worker],
                                                   broker: str) -> None:
    """At the default PERFORMANCE level a failed task's event has no arguments."""
    start_worker("solo")
    import kansoku_celery_tasks as tasks

    tasks.fail.delay(1, password="hunter2")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kansoku.db'}")
    wait_for(lambda: queries.list_groups(engine)["total"] == 1, timeout=60)
    detail = queries.get_group(engine, queries.list_groups(engine)["items"][0]["id"], events=1)
    assert detail is not None
    assert "arguments" not in detail["events"][0].get("extra", {})
    engine.dispose()


def test_prefork_with_two_processes_sums_exactly(tmp_path: Path, start_worker: Callable[..., Worker],
                                                 broker: str) -> None:
    """With the prefork pool and 2 children, the main process's /metrics counts every run of both."""
    worker = start_worker("prefork", 2, KANSOKU_MULTIPROCESS_DIR=str(tmp_path / "metrics"))
    import kansoku_celery_tasks as tasks

    with isolated_runtime(tmp_path / "publisher", dashboard=False):
        runtime.instrument_celery(tasks.app)  # the publisher stamps the enqueue time
        results = [tasks.pid.delay() for _ in range(40)]
    pids = {result.get(timeout=60) for result in results}
    assert len(pids) == 2 and worker.process.pid not in pids
    wait_for(lambda: worker.value("kansoku_job_runs_total", job="tasks.pid", status="ok") == 40.0, timeout=30)
    assert worker.value("kansoku_job_duration_seconds_count", job="tasks.pid", status="ok") == 40.0
    assert worker.value("kansoku_job_queue_wait_seconds_count", job="tasks.pid") == 40.0
    assert worker.value("kansoku_job_in_progress", job="tasks.pid") == 0.0
