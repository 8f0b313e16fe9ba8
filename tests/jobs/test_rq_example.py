"""The RQ example of docs/jobs.md, run by a real RQ worker against a real redis-server."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis
from rq import Queue, SimpleWorker

from kansoku.store import queries
from kansoku.testing import capture_logs, isolated_runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def rq_tasks() -> Iterator[ModuleType]:
    """docs/examples/rq_tasks.py, importable by RQ as `rq_tasks`."""
    spec = importlib.util.spec_from_file_location("rq_tasks", EXAMPLES / "rq_tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rq_tasks"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["rq_tasks"]


def test_rq_jobs_are_runs_named_by_the_job_with_rqs_id(tmp_path: Path, redis_server: Any, rq_tasks: ModuleType) -> None:
    """Each RQ job is one span and one counted run whose run id is RQ's job id; a failure is one error group."""
    redis = Redis.from_url(redis_server.url)
    redis.flushdb()
    queue = Queue("default", connection=redis)
    good = queue.enqueue(rq_tasks.import_orders, "2026-12-01")
    bad = [queue.enqueue(rq_tasks.import_orders, "1970-01-01") for _ in range(3)]
    with isolated_runtime(tmp_path, store_spans=False, service_name="orders-worker") as runtime, \
            capture_logs() as lines:
        exporter = InMemorySpanExporter()
        assert runtime.tracer_provider is not None and runtime.engine is not None
        runtime.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert runtime.errors.flush(10.0)
        spans = {(s.attributes or {})["kansoku.job.run_id"]: s for s in exporter.get_finished_spans()}
        assert sorted(spans) == sorted([good.id, *(b.id for b in bad)])
        assert (spans[good.id].attributes or {})["kansoku.job.status"] == "ok"
        count = runtime.registry.get_sample_value
        assert count("kansoku_job_runs_total", {"job": "import-orders", "status": "ok"}) == 1.0
        assert count("kansoku_job_runs_total", {"job": "import-orders", "status": "error"}) == 3.0
        (group,) = queries.list_groups(runtime.engine)["items"]
        assert (group["culprit"], group["count"]) == ("import-orders", 3)
    importing = [line for line in lines if line["event"] == "importing orders"]
    assert {line["job_run_id"] for line in importing} == {good.id, *(b.id for b in bad)}
    assert all(line["trace_id"] == spans[line["job_run_id"]].context.trace_id.to_bytes(16).hex()
               for line in importing)
    assert good.get_status() == "finished"
