"""The ingest endpoints of `kansoku server`, as Starlette routes.

Sentry: `POST /api/{project_id}/envelope/` and the legacy `POST /api/{project_id}/store/`, the DSN
key from X-Sentry-Auth or the `sentry_key` query parameter. OTLP/HTTP: `POST /v1/traces` (and
`/v1/logs`, `/v1/metrics`), the key as `Authorization: Bearer KEY`. Every answer is JSON (OTLP:
the request's own encoding) and every refusal says why: 400 malformed, 401 unknown or revoked key,
413 too big, 415 unsupported encoding, 429 rate limited (Retry-After, and X-Sentry-Rate-Limits for
Sentry SDKs), 503 a queue full or the store unreachable (retry). Nothing here answers 5xx but 503.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kansoku._safety import is_strict, report_internal_error
from kansoku.ingest import sentry
from kansoku.ingest.body import IngestError, decompress, read_body
from kansoku.ingest.keys import KeyCache, RateLimiter, sentry_key
from kansoku.ingest.pipeline import Ingestor
from kansoku.settings import Settings
from kansoku.store.projects import Project

__all__ = ["Ingest", "guarded", "sentry_routes"]

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Ingest:
    """What the endpoints share: settings, the key cache, the rate limiter, the ingestor."""

    settings: Settings
    keys: KeyCache
    limiter: RateLimiter
    ingestor: Ingestor
    answers: Counter[int] = field(default_factory=Counter)  # requests by the status answered

    async def project(self, key: str | None) -> Project:
        """The project of `key`; IngestError 401 for a missing, unknown or revoked key."""
        if not key:
            raise IngestError(401, "no project key: send the DSN's key (X-Sentry-Auth) or "
                              "Authorization: Bearer KEY")
        hit, project = self.keys.cached(key)
        if not hit:
            try:
                project = await run_in_threadpool(self.keys.resolve, key)
            except Exception as exc:
                report_internal_error("ingest.keys", exc)
                raise IngestError(503, "the store is unreachable: retry later", {"Retry-After": "5"}) from None
        if project is None:
            raise IngestError(401, "unknown or revoked project key")
        return project

    async def body(self, request: Request) -> bytes:
        """The request body, bounded while reading and while decompressing."""
        raw = await read_body(request.stream(), request.headers.get("content-length"),
                              self.settings.ingest_max_body_bytes)
        return decompress(raw, request.headers.get("content-encoding"), self.settings.ingest_max_decompressed_bytes)

    def limit(self, project: Project, n: int, *, sentry_sdk: bool = False) -> None:
        """Spend `n` of the project key's rate limit (its own, else the server's)."""
        per_minute = project.rate_limit or self.settings.ingest_rate_limit
        self.limiter.take(project.key, n, per_minute, sentry=sentry_sdk)


def refusal(exc: IngestError) -> JSONResponse:
    """The JSON answer of a refused request."""
    return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=exc.headers)


def guarded(handler: Handler, answers: Counter[int]) -> Handler:
    """`handler` with IngestError answered as JSON and any other failure as 400, never 500."""

    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except IngestError as exc:
            answers[exc.status] += 1
            return refusal(exc)
        except Exception as exc:  # a payload that got past validation and broke a decoder
            report_internal_error("ingest.request", exc)
            if is_strict():
                raise
            answers[400] += 1
            return JSONResponse({"detail": f"could not process the payload ({type(exc).__name__})"},
                                status_code=400)
        answers[response.status_code] += 1
        return response

    return endpoint


def sentry_routes(ingest: Ingest) -> list[BaseRoute]:
    """The envelope and store endpoints."""

    async def receive(request: Request, envelope: bool) -> Response:
        project = await ingest.project(sentry_key(request.headers, request.query_params))
        if request.path_params["project_id"] != project.id:
            raise IngestError(401, f"this key does not belong to project {request.path_params['project_id']}")
        body = await ingest.body(request)
        parse = sentry.parse_envelope if envelope else sentry.parse_store_body
        parsed = parse(body, project.name, time.time())
        ingest.limit(project, len(parsed.events) + len(parsed.checkins) + (1 if parsed.spans else 0),
                     sentry_sdk=True)
        ingest.ingestor.accept(parsed.events, parsed.spans, parsed.ignored)
        if parsed.checkins:
            await run_in_threadpool(ingest.ingestor.accept_checkins, parsed.checkins)
        event_id = parsed.events[0][0]["event_id"] if parsed.events else None
        return JSONResponse({"id": event_id})

    async def envelope(request: Request) -> Response:
        return await receive(request, True)

    async def store(request: Request) -> Response:
        return await receive(request, False)

    return [Route("/api/{project_id:int}/envelope/", guarded(envelope, ingest.answers), methods=["POST"]),
            Route("/api/{project_id:int}/store/", guarded(store, ingest.answers), methods=["POST"])]


