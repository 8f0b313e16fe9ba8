"""Ingestion for `kansoku server`: other services' Sentry events and OTLP, into kansoku's pipeline.

Each request is authenticated by its project key (`keys`), read with size limits while reading and
decompressed with a bound on the output (`body`), decoded (`sentry`, `otlp`), and handed to the
same parts as native data: error events to the `ErrorTracker` (grouping, classification,
regressions, alerts), spans and log records to their stores through bounded writers (`sink`,
`spans`, `logs`), Sentry check-ins to the cron monitors (`checkins`). A request is
answered 2xx only once what it carried was accepted by those bounded queues, which flush at
shutdown; malformed input is answered 400 with the reason, never 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from kansoku.ingest.routes import Ingest

__all__ = ["ingest_routes"]


def ingest_routes(ingest: Ingest) -> list[BaseRoute]:
    """Every ingest route: Sentry's envelope and store endpoints, OTLP/HTTP's."""
    from kansoku.ingest.otlp_routes import otlp_routes
    from kansoku.ingest.routes import sentry_routes

    return [*sentry_routes(ingest), *otlp_routes(ingest)]
