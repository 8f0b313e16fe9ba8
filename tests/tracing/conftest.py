"""Fixtures of the tracing tests: a provider with an in-memory exporter, state reset after each test."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kansoku import debug, logs, tracing
from kansoku.settings import load_settings
from kansoku.tracing import configure_tracing

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _reset_tracing() -> Iterator[None]:
    """Every test starts and ends with traced unconfigured, no library instrumented."""
    tracing.reset()
    yield
    tracing.uninstrument_libraries()
    tracing.reset()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where the test provider's spans land."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A configured provider (service `svc-test`, 100 % sampling) exporting to `exporter` at once."""
    made = configure_tracing(load_settings(store_spans=False, environment="test", version="1.0.0"), None,
                             "svc-test")
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


@pytest.fixture
def captured() -> Iterator[list[tuple[BaseException, dict[str, Any]]]]:
    """A debugger whose snapshots are collected here, installed as the current one."""
    seen: list[tuple[BaseException, dict[str, Any]]] = []

    def capture(exc: BaseException, /, *, snapshot: dict[str, Any], mechanism: str) -> object:
        seen.append((exc, snapshot))
        return "event-id"

    debug.use(debug.Debugger(capture=capture, clock=lambda: 1_800_000_000.0))
    yield seen
    debug.use(None)


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """JSON logging into a buffer with the trace-id processor; returns a reader of the lines."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False),
                           hooks=[tracing.add_trace_ids], stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
