"""The OTLP/HTTP endpoints: /v1/traces and /v1/logs (protobuf or JSON, gzip), /v1/metrics.

Answers follow the OTLP/HTTP specification: 200 with an ExportTraceServiceResponse (or
ExportLogsServiceResponse) in the request's encoding, its `partial_success` naming how many spans
(or log records) were rejected and why; a refusal
is a google.rpc.Status-shaped JSON body ({"code", "message"}) with the HTTP status that tells the
exporter whether to retry (429 and 503 are retried, 400/401/404/413/415 are not).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kansoku.ingest import logs as otlp_logs
from kansoku.ingest import otlp
from kansoku.ingest.body import IngestError
from kansoku.ingest.keys import bearer_key
from kansoku.ingest.routes import Ingest, guarded

__all__ = ["otlp_routes"]


def otlp_routes(ingest: Ingest) -> list[BaseRoute]:
    """The OTLP/HTTP routes over `ingest`."""

    async def traces(request: Request) -> Response:
        kind = otlp.media_type(request.headers.get("content-type"))
        project = await ingest.project(bearer_key(request.headers))
        body = await ingest.body(request)
        decoded = otlp.traces_of(otlp.decode_traces(body, kind), project.name)
        ingest.limit(project, len(decoded.spans))
        ingest.ingestor.accept(decoded.events, decoded.spans)
        ingest.ingestor.counts["spans_rejected"] += decoded.rejected
        return Response(otlp.encode_response(kind, decoded.rejected, decoded.reason), media_type=kind)

    async def logs(request: Request) -> Response:
        kind = otlp.media_type(request.headers.get("content-type"))
        project = await ingest.project(bearer_key(request.headers))
        body = await ingest.body(request)
        decoded = otlp_logs.logs_of(otlp_logs.decode_logs(body, kind), project.name)
        ingest.limit(project, len(decoded.records))
        ingest.ingestor.accept_logs(decoded.records)
        ingest.ingestor.counts["logs_rejected"] += decoded.rejected
        return Response(otlp.encode_response(kind, decoded.rejected, decoded.reason, signal="logs"),
                        media_type=kind)

    async def metrics(request: Request) -> Response:
        await ingest.project(bearer_key(request.headers))
        raise IngestError(404, "OTLP metrics are not supported by kansoku server: expose Prometheus "
                          "metrics and scrape them (kansoku's /metrics)")

    return [Route("/v1/traces", guarded(traces, ingest.answers), methods=["POST"]),
            Route("/v1/logs", guarded(logs, ingest.answers), methods=["POST"]),
            Route("/v1/metrics", guarded(metrics, ingest.answers), methods=["POST"])]


