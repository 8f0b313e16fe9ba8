"""kansoku's alert delivery is not the app's traffic: no client spans even with httpx instrumented."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine

from kansoku import tracing
from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.rules import SiteInfo
from kansoku.settings import load_settings


def test_alertmanager_channel_makes_no_client_spans(kit: Any, store: Engine, receiver: Any) -> None:
    """With instrument_httpx, the app's own httpx call is a CLIENT span; the Alertmanager POST is not."""
    exporter = InMemorySpanExporter()
    provider = tracing.configure_tracing(load_settings(store_spans=False, instrument_httpx=True), None, "svc")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        config = parse_alerting({"channels": [{"name": "am", "type": "alertmanager", "url": receiver.url}],
                                 "rules": [{"name": "crit"}], "group_wait_seconds": 0},
                                site=SiteInfo(service="shop", environment="test"))
        AlertEngine(config, store).on_error(kit.event(), kit.change())
        assert Dispatcher(config, store).run_once() == 1
        httpx.get(receiver.url + "/app-call")  # the app's own call, for contrast
    finally:
        tracing.uninstrument_libraries()
        provider.shutdown()
    posted = [r for r in receiver.requests if r.path == "/api/v2/alerts"]
    assert len(posted) == 1 and "traceparent" not in posted[0].headers
    assert [s.name for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT] == ["GET"]
