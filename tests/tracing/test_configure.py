"""configure_tracing: resource, sampler, exporters by settings, global provider only when asked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from sqlalchemy import func, select

from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings
from kansoku.store import create_store_engine
from kansoku.store.tables import metadata, spans
from kansoku.tracing import add_trace_ids, configure_tracing, current_trace_ids


def test_resource_names_the_service_and_otel_resource_attributes_add_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """service.name/version, deployment.environment and host.name; OTEL_RESOURCE_ATTRIBUTES is honoured."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
    settings = load_settings(environment="prod", version="3.1.0", store_spans=False)
    provider = configure_tracing(settings, None, "billing")
    attributes = provider.resource.attributes
    assert {k: attributes[k] for k in ("service.name", "service.version", "deployment.environment", "team")} == {
        "service.name": "billing", "service.version": "3.1.0", "deployment.environment": "prod",
        "team": "payments"}
    assert attributes["host.name"]
    provider.shutdown()


def test_sampler_is_parent_based_ratio_from_settings() -> None:
    """KANSOKU_TRACE_SAMPLE_RATE becomes ParentBased(TraceIdRatioBased(rate))."""
    provider = configure_tracing(load_settings(trace_sample_rate=0.25, store_spans=False), None)
    assert provider.sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.25}")
    provider.shutdown()


def test_global_provider_is_left_alone() -> None:
    """Tests make many providers: configure_tracing never touches the global one by default."""
    provider = configure_tracing(load_settings(store_spans=False), None)
    assert trace.get_tracer_provider() is not provider
    provider.shutdown()


def test_set_global_installs_the_provider() -> None:
    """set_global=True makes it the process's provider (checked in a fresh interpreter)."""
    code = ("from opentelemetry import trace\n"
            "from kansoku.settings import load_settings\n"
            "from kansoku.tracing import configure_tracing\n"
            "p = configure_tracing(load_settings(store_spans=False), None, 'g', set_global=True)\n"
            "print(trace.get_tracer_provider() is p)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"


def test_console_exporter_prints_spans(capsys: pytest.CaptureFixture[str]) -> None:
    """trace_console=true prints each span as JSON (development)."""
    provider = configure_tracing(load_settings(trace_console=True, store_spans=False), None, "dev")
    provider.get_tracer("t").start_span("printed-span").end()
    provider.force_flush(5000)
    out = capsys.readouterr().out
    assert '"name": "printed-span"' in out
    provider.shutdown()


def test_store_spans_off_keeps_spans_out_of_the_store(tmp_path: Path) -> None:
    """store_spans=false with no endpoint: nothing is written to kansoku_spans."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'k.db'}")
    metadata.create_all(engine)
    provider = configure_tracing(load_settings(store_spans=False), engine)
    provider.get_tracer("t").start_span("dropped").end()
    provider.force_flush(5000)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar_one() == 0
    provider.shutdown()


def test_grpc_without_the_extra_fails_with_the_fix() -> None:
    """otlp_protocol=grpc with the gRPC exporter missing says which extra to install."""
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC exporter is installed here")
    settings = load_settings(otlp_endpoint="http://collector:4317", otlp_protocol="grpc")
    with pytest.raises(ConfigError, match=r"pip install 'kansoku\[grpc\]'"):
        configure_tracing(settings, None)


def test_add_trace_ids_is_a_pure_processor() -> None:
    """Outside a span the event is untouched; inside, trace_id/span_id are added (given ones kept)."""
    provider = configure_tracing(load_settings(store_spans=False), None)
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    assert current_trace_ids() is None
    with provider.get_tracer("t").start_as_current_span("s") as span:
        ctx = span.get_span_context()
        ids = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
        event = dict(add_trace_ids(None, "info", {"event": "x"}))
        assert event == {"event": "x", "trace_id": ids[0], "span_id": ids[1]}
        assert add_trace_ids(None, "info", {"trace_id": "given"})["trace_id"] == "given"
        assert current_trace_ids() == ids
    assert json.dumps(event)
    provider.shutdown()
