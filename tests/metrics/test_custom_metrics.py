"""Business and custom metrics: get-or-create by name, one definition per name, and `timed`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary

from kansoku.exceptions import MetricDefinitionError
from kansoku.metrics import (
    MetricConfig,
    counter,
    default_registry,
    gauge,
    histogram,
    register_metric,
    summary,
    timed,
    track_business_metric,
)
from kansoku.testing import capture_logs


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry."""
    return CollectorRegistry()


def test_get_or_create_returns_the_same_metric(registry: CollectorRegistry) -> None:
    """Asking twice for the same counter gives the same object; `_total` in the name is the same name."""
    first = counter("orders_created", "Orders.", ["channel"], registry=registry)
    assert counter("orders_created", "Orders.", ["channel"], registry=registry) is first
    assert counter("orders_created_total", labelnames=["channel"], registry=registry) is first
    first.labels("api").inc(2)
    assert registry.get_sample_value("orders_created_total", {"channel": "api"}) == 2.0


@pytest.mark.parametrize(("make", "kind"), [(counter, Counter), (gauge, Gauge), (histogram, Histogram),
                                            (summary, Summary)])
def test_each_kind_is_made(registry: CollectorRegistry, make: Any, kind: type) -> None:
    """counter(), gauge(), histogram() and summary() make prometheus_client metrics."""
    assert isinstance(make("thing_seconds", "A thing.", registry=registry), kind)


def test_redefinition_with_other_labels_is_an_error(registry: CollectorRegistry) -> None:
    """The same name with other label names raises MetricDefinitionError naming both definitions."""
    counter("payments", "Payments.", ["currency"], registry=registry)
    with pytest.raises(MetricDefinitionError, match=r"'payments'.*\['currency'\].*\['currency', 'method'\]"):
        counter("payments", "Payments.", ["currency", "method"], registry=registry)


def test_redefinition_with_other_type_is_an_error(registry: CollectorRegistry) -> None:
    """The same name as another type raises MetricDefinitionError."""
    gauge("queue_items", "Items.", registry=registry)
    with pytest.raises(MetricDefinitionError, match="already defined as a gauge"):
        histogram("queue_items", "Items.", registry=registry)


def test_redefinition_with_other_help_is_an_error(registry: CollectorRegistry) -> None:
    """Two different non-empty help texts for one name are a conflict; an empty one is not."""
    gauge("workers", "Workers running.", registry=registry)
    assert gauge("workers", registry=registry) is gauge("workers", "Workers running.", registry=registry)
    with pytest.raises(MetricDefinitionError):
        gauge("workers", "Something else.", registry=registry)


def test_clash_with_a_metric_made_elsewhere_is_an_error(registry: CollectorRegistry) -> None:
    """A name already taken by a metric made directly with prometheus_client raises clearly."""
    Gauge("legacy_things", "Made by hand.", registry=registry)
    with pytest.raises(MetricDefinitionError, match="cannot define counter 'legacy_things'"):
        counter("legacy_things", "Again.", registry=registry)


def test_register_metric_from_config(registry: CollectorRegistry) -> None:
    """register_metric(MetricConfig) gets or creates the configured metric, buckets included."""
    config = MetricConfig("order_value_dollars", "Order values.", "histogram", labels=("channel",),
                          buckets=(1.0, 10.0, 100.0))
    metric = register_metric(config, registry=registry)
    assert register_metric(config, registry=registry) is metric
    metric.labels("web").observe(5)
    assert registry.get_sample_value("order_value_dollars_bucket", {"channel": "web", "le": "10.0"}) == 1.0
    assert registry.get_sample_value("order_value_dollars_bucket", {"channel": "web", "le": "1.0"}) == 0.0


def test_track_business_metric_counts_successes_only(registry: CollectorRegistry) -> None:
    """The decorated function's successes add `value`; failures add nothing and still raise."""

    @track_business_metric("refunds", value=2.5, labels={"reason": "damaged"}, registry=registry)
    def refund(ok: bool) -> str:
        if not ok:
            raise ValueError("declined")
        return "done"

    assert refund(True) == "done"
    with pytest.raises(ValueError, match="declined"):
        refund(False)
    assert registry.get_sample_value("refunds_total", {"reason": "damaged"}) == 2.5


async def test_track_business_metric_on_async_functions(registry: CollectorRegistry) -> None:
    """Async functions are tracked the same way."""
    @track_business_metric("signups", registry=registry)
    async def signup() -> int:
        await asyncio.sleep(0)
        return 1

    assert await signup() == 1
    assert await signup() == 1
    assert registry.get_sample_value("signups_total") == 2.0


def test_default_registry_without_runtime_is_prometheus_default() -> None:
    """Not instrumented, the helpers use prometheus_client's default registry."""
    from kansoku import runtime as _runtime

    assert _runtime.current() is None
    assert default_registry() is REGISTRY


def test_timed_sync_records_duration_and_calls(registry: CollectorRegistry) -> None:
    """A sync function: one duration observation and one `success` call per call."""

    @timed(registry=registry)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    assert add(2, 2) == 4
    labels = {"function": add.__qualname__, "module": __name__}
    assert registry.get_sample_value("function_duration_seconds_count", labels) == 2.0
    assert registry.get_sample_value("function_calls_total", {**labels, "status": "success"}) == 2.0


async def test_timed_async_records_exception_type(registry: CollectorRegistry) -> None:
    """An async function that raises: the call counts under the exception type, and it re-raises."""

    @timed("charge", module="payments", registry=registry)
    async def charge(amount: float) -> float:
        await asyncio.sleep(0)
        if amount < 0:
            raise ValueError("negative")
        return amount

    assert await charge(5) == 5
    with pytest.raises(ValueError, match="negative"):
        await charge(-1)
    labels = {"function": "charge", "module": "payments"}
    assert registry.get_sample_value("function_calls_total", {**labels, "status": "success"}) == 1.0
    assert registry.get_sample_value("function_calls_total", {**labels, "status": "ValueError"}) == 1.0
    assert registry.get_sample_value("function_duration_seconds_count", labels) == 2.0


def test_timed_logs_slow_calls(registry: CollectorRegistry) -> None:
    """A call over the threshold logs one WARNING with the function and its duration."""

    @timed("report", module="reports", slow_ms=0.0, registry=registry)
    def report() -> None:
        return None

    @timed("fast", module="reports", slow_ms=60_000.0, registry=registry)
    def fast() -> None:
        return None

    with capture_logs() as records:
        report()
        fast()
    (record,) = records
    assert record["level"] == "warning"
    assert record["event"] == "slow call"
    assert (record["function"], record["module"], record["threshold_ms"], record["status"]) == (
        "report", "reports", 0.0, "success")
    assert record["duration_ms"] >= 0


def test_timed_keeps_the_function_signature(registry: CollectorRegistry) -> None:
    """The wrapper keeps the name and docstring of the function."""

    @timed(registry=registry)
    def documented() -> None:
        """Says what it does."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Says what it does."


def test_conflicting_timed_metric_is_raised_to_the_caller(registry: CollectorRegistry) -> None:
    """If `function_calls` was defined otherwise, the decorated call says so instead of hiding it."""
    counter("function_calls", "Something else.", ["name"], registry=registry)

    @timed(registry=registry)
    def job() -> None:
        return None

    with pytest.raises(MetricDefinitionError):
        job()
