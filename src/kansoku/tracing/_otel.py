"""OpenTelemetry's standard settings, as the SDK documents them: sampler, propagators, exporters.

`Settings` reads the variables (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
`OTEL_PROPAGATORS`, `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SDK_DISABLED`); this
module turns them into the SDK's objects. The exporters' own variables (headers, timeout,
compression, certificates, per signal or not) are read by the SDK's exporters themselves, so they
mean exactly what the SDK says.
"""

from __future__ import annotations

import importlib
from typing import Final

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util._importlib_metadata import entry_points

from kansoku.exceptions import ConfigError
from kansoku.settings import Settings

__all__ = ["build_propagator", "build_sampler", "otlp_url", "span_exporter_target", "traces_url"]

_PACKAGES: Final = {"b3": "opentelemetry-propagator-b3", "b3multi": "opentelemetry-propagator-b3",
                    "jaeger": "opentelemetry-propagator-jaeger", "xray": "opentelemetry-propagator-aws-xray"}


def build_sampler(settings: Settings) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names, with OTEL_TRACES_SAMPLER_ARG as its ratio."""
    name = settings.traces_sampler
    kind = name.removeprefix("parentbased_")
    root: Sampler = ALWAYS_ON if kind == "always_on" else ALWAYS_OFF if kind == "always_off" else (
        TraceIdRatioBased(settings.trace_sample_rate))
    return ParentBased(root) if name != kind else root


def build_propagator(settings: Settings) -> TextMapPropagator:
    """The propagators OTEL_PROPAGATORS names, as one composite (in and out)."""
    propagators: list[TextMapPropagator] = []
    for name in settings.propagator_names:
        if name == "none":
            return CompositePropagator([])
        if name == "tracecontext":
            propagators.append(TraceContextTextMapPropagator())
        elif name == "baggage":
            propagators.append(W3CBaggagePropagator())
        else:
            propagators.append(_installed_propagator(name))
    return CompositePropagator(propagators)


def _installed_propagator(name: str) -> TextMapPropagator:
    """A propagator registered by a package (entry point group `opentelemetry_propagator`)."""
    found = list(entry_points(group="opentelemetry_propagator", name=name))
    if not found:
        package = _PACKAGES.get(name, f"the package that provides the {name!r} propagator")
        raise ConfigError(f"propagators (OTEL_PROPAGATORS) names {name!r}, which is not installed: "
                          f"pip install {package}")
    propagator: TextMapPropagator = found[0].load()()
    return propagator


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of an endpoint: the base URL gets `/v1/traces`, as the spec says."""
    return otlp_url(endpoint, "traces")


def otlp_url(endpoint: str, signal: str) -> str:
    """The OTLP/HTTP URL of `signal` ("traces", "metrics", "logs") under a base endpoint."""
    base, path = endpoint.rstrip("/"), f"/v1/{signal}"
    return base if base.endswith(path) else base + path


def span_exporter_target(settings: Settings) -> tuple[str, str | None] | None:
    """Where spans go: ("otlp", URL or None for the SDK's default), ("console", None), or None
    for kansoku's default (the local store) and for "none" (nowhere)."""
    if settings.traces_exporter == "none" or settings.sdk_disabled:
        return None
    if settings.traces_exporter == "console":
        return "console", None
    grpc = settings.otlp_protocol == "grpc"
    if settings.otlp_traces_endpoint:  # per signal: used as it is
        return "otlp", settings.otlp_traces_endpoint
    if settings.otlp_endpoint:
        return "otlp", settings.otlp_endpoint if grpc else traces_url(settings.otlp_endpoint)
    if settings.traces_exporter == "otlp":
        return "otlp", None  # the SDK's default, http://localhost:4318/v1/traces (4317 for gRPC)
    return None


def otlp_span_exporter(endpoint: str | None, protocol: str) -> SpanExporter:
    """The SDK's OTLP span exporter (headers, timeout, compression from its own variables)."""
    if protocol == "grpc":
        try:  # an optional extra: imported by name so that it is not needed to type-check
            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
        except ImportError:
            raise ConfigError(
                "otlp_protocol='grpc' (OTEL_EXPORTER_OTLP_PROTOCOL) needs the gRPC exporter: "
                "pip install 'kansoku[grpc]', or use http/protobuf"
            ) from None
        exporter: SpanExporter = grpc.OTLPSpanExporter(endpoint=endpoint)
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)
