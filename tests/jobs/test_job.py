"""`kansoku.job`: span, metrics, error grouping by job and log context, for any worker loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import kansoku
from kansoku import jobs
from kansoku.runtime import Runtime
from kansoku.store import queries
from kansoku.testing import capture_logs, isolated_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a throwaway store, its spans also kept in memory (`runtime.spans`)."""
    with isolated_runtime(tmp_path, store_spans=False) as made:
        exporter = InMemorySpanExporter()
        assert made.tracer_provider is not None
        made.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        made.spans = exporter  # type: ignore[attr-defined]
        yield made


def sample(runtime: Runtime, name: str, **labels: str) -> float | None:
    return runtime.registry.get_sample_value(name, labels)


def import_orders(n: int) -> int:
    with kansoku.job("import-orders"):
        if n < 0:
            raise ValueError(f"cannot import {n} orders")
        return n


def test_block_is_a_span_with_run_id_and_metrics(runtime: Runtime) -> None:
    """A `with kansoku.job(...)` block is one INTERNAL span named by the job, counted ok with a duration."""
    with kansoku.job("import-orders", run_id="run-1") as run:
        assert jobs.current_run() is run
    assert jobs.current_run() is None
    (span,) = runtime.spans.get_finished_spans()  # type: ignore[attr-defined]
    assert span.name == "import-orders" and span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {"kansoku.job.name": "import-orders", "kansoku.job.run_id": "run-1",
                                           "kansoku.job.status": "ok"}
    assert sample(runtime, "kansoku_job_runs_total", job="import-orders", status="ok") == 1.0
    assert sample(runtime, "kansoku_job_duration_seconds_count", job="import-orders", status="ok") == 1.0
    assert sample(runtime, "kansoku_job_in_progress", job="import-orders") == 0.0


def test_log_lines_carry_job_run_and_trace_ids(runtime: Runtime) -> None:
    """Log lines inside a run carry the job name, the run id and the run's trace id; outside, none of them."""
    log = kansoku.get_logger("worker")
    with capture_logs() as lines:
        with kansoku.job("import-orders", run_id="run-7") as run:
            log.info("importing")
        log.info("idle")
    inside, outside = lines
    assert (inside["job"], inside["job_run_id"], inside["trace_id"]) == ("import-orders", "run-7", run.trace_id)
    assert "job" not in outside and "job_run_id" not in outside and "trace_id" not in outside


def test_failures_group_by_job_with_its_name_as_culprit(runtime: Runtime) -> None:
    """100 failing runs are one error group whose culprit is the job's name; counted by exception type."""
    for n in range(100):
        with pytest.raises(ValueError, match="cannot import"):
            import_orders(-n - 1)
    assert runtime.errors.flush(10.0)
    assert runtime.engine is not None
    (group,) = queries.list_groups(runtime.engine)["items"]
    assert (group["culprit"], group["count"], group["exception_type"]) == ("import-orders", 100, "ValueError")
    assert sample(runtime, "kansoku_job_runs_total", job="import-orders", status="error") == 100.0
    assert sample(runtime, "kansoku_job_failures_total", job="import-orders", exception="ValueError") == 100.0
    spans = runtime.spans.get_finished_spans()  # type: ignore[attr-defined]
    assert len(spans) == 100 and all(s.status.status_code is StatusCode.ERROR for s in spans)


def test_same_code_failing_in_two_jobs_makes_two_groups(runtime: Runtime) -> None:
    """One helper failing inside two different jobs gives one group per job."""
    def parse() -> None:
        raise KeyError("sku")

    for name in ("import-orders", "import-stock"):
        with pytest.raises(KeyError), kansoku.job(name):
            parse()
    assert runtime.errors.flush(10.0)
    assert runtime.engine is not None
    culprits = sorted(g["culprit"] for g in queries.list_groups(runtime.engine)["items"])
    assert culprits == ["import-orders", "import-stock"]


def test_decorated_coroutine_runs_once_per_call_and_keeps_its_shape(runtime: Runtime) -> None:
    """`@kansoku.job` keeps a coroutine function a coroutine function; each call is a run with its own id."""
    @kansoku.job
    async def send_digest(user_id: int) -> int:
        run = jobs.current_run()
        assert run is not None
        return user_id

    assert asyncio.iscoroutinefunction(send_digest)

    async def main() -> list[int]:
        return list(await asyncio.gather(send_digest(1), send_digest(2)))

    assert asyncio.run(main()) == [1, 2]
    spans = runtime.spans.get_finished_spans()  # type: ignore[attr-defined]
    name = f"{__name__}.test_decorated_coroutine_runs_once_per_call_and_keeps_its_shape.<locals>.send_digest"
    assert [s.name for s in spans] == [name, name]
    assert len({(s.attributes or {})["kansoku.job.run_id"] for s in spans}) == 2
    assert sample(runtime, "kansoku_job_runs_total", job=name, status="ok") == 2.0


def test_arguments_only_at_argument_capturing_levels(tmp_path: Path) -> None:
    """Arguments go on the span and the event (redacted) at DETAILED, never at PERFORMANCE."""
    @kansoku.job("charge")
    def charge(order_id: int, password: str) -> None:
        raise RuntimeError("declined")

    found = {}
    for level in ("PERFORMANCE", "DETAILED"):
        with isolated_runtime(tmp_path / level, store_spans=False, trace_level=level) as runtime:
            exporter = InMemorySpanExporter()
            assert runtime.tracer_provider is not None and runtime.engine is not None
            runtime.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            with pytest.raises(RuntimeError):
                charge(42, password="hunter2")
            assert runtime.errors.flush(10.0)
            (group,) = queries.list_groups(runtime.engine)["items"]
            event = queries.get_group(runtime.engine, group["id"])["events"][0]  # type: ignore[index]
            (span,) = exporter.get_finished_spans()
            found[level] = (event.get("extra", {}).get("arguments"),
                            {k: v for k, v in (span.attributes or {}).items() if k.startswith("kansoku.args.")})
    assert found["PERFORMANCE"] == (None, {})
    arguments, attributes = found["DETAILED"]
    assert arguments == {"order_id": 42, "password": "[REDACTED]"}
    assert attributes == {"kansoku.args.order_id": 42, "kansoku.args.password": "[REDACTED]"}


def test_cancelled_run_is_not_an_error(runtime: Runtime) -> None:
    """A run ended by a BaseException that is not an Exception counts as cancelled and makes no event."""
    with pytest.raises(KeyboardInterrupt), kansoku.job("loop"):
        raise KeyboardInterrupt
    assert runtime.errors.flush(10.0)
    assert runtime.engine is not None
    assert queries.list_groups(runtime.engine)["total"] == 0
    assert sample(runtime, "kansoku_job_runs_total", job="loop", status="cancelled") == 1.0


def test_without_a_runtime_runs_count_in_the_default_registry() -> None:
    """Before instrument(), a job counts in prometheus_client's registry and logs its failure."""
    from prometheus_client import REGISTRY

    jobs.reset()
    before = REGISTRY.get_sample_value("kansoku_job_runs_total", {"job": "bare", "status": "error"}) or 0.0
    with capture_logs() as lines, pytest.raises(ValueError, match="boom"), kansoku.job("bare"):
        raise ValueError("boom")
    assert REGISTRY.get_sample_value("kansoku_job_runs_total", {"job": "bare", "status": "error"}) == before + 1
    assert [(line["event"], line["job"]) for line in lines] == [("job failed", "bare")]


def test_context_manager_needs_a_name() -> None:
    """`with kansoku.job():` says it needs a name."""
    with pytest.raises(TypeError, match="needs a name"), kansoku.job():
        pass
