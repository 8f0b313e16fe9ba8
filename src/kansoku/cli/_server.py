"""`kansoku server`: take every service's Sentry events and OTLP traces, with the dashboard."""

from __future__ import annotations

import os

import click

from kansoku.cli._common import EXIT_FAILURE, CliError, check_port_free, load_settings_or_exit, mask_url, warn
from kansoku.cli._serve import HOST_HELP


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (and the store).")
@click.option("--database-url", metavar="URL", help="Store URL (default: KANSOKU_DATABASE_URL).")
def server(host: str, port: int, workers: int, database_url: str | None) -> None:
    """Ingest Sentry SDK events and OTLP traces from any service, with the dashboard and alerts.

    Serves the Sentry envelope and store endpoints (/api/PROJECT/envelope/), OTLP/HTTP
    (/v1/traces), the dashboard and JSON API (/kansoku/), /health and /ready, and runs alert
    delivery and retention, all on the configured store (migrated first). Make a project with
    `kansoku projects create NAME` and point the SDKs at its DSN and OTLP endpoint. SIGTERM or
    Ctrl-C stops it after writing everything it acknowledged.

    \b
    Examples:
      kansoku server
      KANSOKU_PUBLIC_URL=https://kansoku.example.com kansoku server --host 0.0.0.0 --workers 4
      kansoku server --database-url postgresql+psycopg://kansoku@db/kansoku
    """
    import uvicorn

    from kansoku.store import migrations

    settings = load_settings_or_exit(database_url=database_url)
    if database_url:
        os.environ["KANSOKU_DATABASE_URL"] = database_url  # the workers read their settings again
    try:
        migrations.upgrade(settings.database_url)
    except Exception as exc:
        raise CliError(f"cannot migrate the store at {mask_url(settings.database_url)}: {exc}", EXIT_FAILURE) from None
    check_port_free(host, port)
    warn(f"kansoku server on http://{host}:{port} ({workers} process{'es' if workers > 1 else ''}): "
         f"Sentry /api/PROJECT/envelope/, OTLP /v1/traces, dashboard {settings.route_prefix}/; "
         f"store {mask_url(settings.database_url)}")
    uvicorn.run("kansoku.runtime.server:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, timeout_graceful_shutdown=30)
