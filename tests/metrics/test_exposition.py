"""The whole exposition: parsed by prometheus_client's parsers and clean under `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from kansoku._worker import BackgroundWorker
from kansoku.metrics import HttpMetrics, counter, gauge, histogram, make_registry, summary, timed
from kansoku.settings import load_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _full_registry():  # type: ignore[no-untyped-def]
    """A registry with everything kansoku exports, each with data."""
    settings = load_settings()
    registry = make_registry(settings)
    metrics = HttpMetrics(registry, settings)
    metrics.observe("GET", "/items/{item_id}", 200, 0.012, 0, 120, trace_id=TRACE_ID)
    metrics.observe("POST", "/orders", 500, 0.3, 2048, 51)
    metrics.in_progress.track(_Live())

    @timed(registry=registry)
    def work() -> int:
        return 1

    work()
    counter("orders_created", "Orders created.", ["channel"], registry=registry).labels("api").inc()
    gauge("inventory_items", "Items in stock.", ["product"], registry=registry).labels("p1").set(4)
    histogram("payment_amount_dollars", "Payment amounts.", registry=registry).observe(12.5)
    summary("batch_size_items", "Items per batch.", registry=registry).observe(40)
    worker = BackgroundWorker("exposition-test", maxsize=10)
    return registry, worker


def _promtool() -> str:
    for _ in range(60):  # the lead's apt run installs it; give a concurrent install time to finish
        path = shutil.which("promtool")
        if path:
            return path
        time.sleep(5)
    raise AssertionError("promtool is not installed: apt-get install --no-install-recommends prometheus")


def test_text_exposition_parses_and_has_every_family() -> None:
    """prometheus_client's parser reads it, and every kansoku family is in it."""
    registry, _worker = _full_registry()
    names = {family.name for family in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {
        "http_requests", "http_request_duration_seconds", "http_requests_in_progress",
        "http_request_size_bytes", "http_response_size_bytes", "function_duration_seconds", "function_calls",
        "orders_created",
        "process_cpu_seconds", "process_open_fds", "process_threads", "python_info", "python_gc_collections",
        "system_cpu_seconds", "system_memory_bytes", "system_disk_bytes", "system_network_receive_bytes",
        "system_load_average", "kansoku_queue_depth", "kansoku_dropped_events", "kansoku_internal_errors",
    } <= names


def test_promtool_check_metrics_is_clean() -> None:
    """`promtool check metrics` finds no problem (exit 0, nothing printed)."""
    registry, _worker = _full_registry()
    result = subprocess.run([_promtool(), "check", "metrics"], input=generate_latest(registry),
                            capture_output=True, check=False, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, b"")


def test_openmetrics_exposition_parses_with_exemplars() -> None:
    """The OpenMetrics rendering parses, and the latency bucket carries the trace id exemplar."""
    registry, _worker = _full_registry()
    families = {f.name: f for f in parse_openmetrics(generate_openmetrics(registry).decode())}
    exemplars = [s.exemplar for s in families["http_request_duration_seconds"].samples if s.exemplar]
    assert [(e.labels, e.value) for e in exemplars] == [({"trace_id": TRACE_ID}, 0.012)]


@pytest.mark.parametrize("name", ["http_requests_total", "function_calls_total", "orders_created_total"])
def test_counters_end_in_total(name: str) -> None:
    """Counters are exposed with the `_total` suffix Prometheus expects."""
    registry, _worker = _full_registry()
    assert f"\n{name}{{" in generate_latest(registry).decode()


class _Live:
    """A request in progress that no route matched."""

    method = "GET"

    def live_route(self) -> str:
        return "<unmatched>"
