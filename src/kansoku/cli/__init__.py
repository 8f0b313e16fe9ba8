"""`kansoku`: the command line, a thin shell over kansoku's public API.

Each command parses its arguments, calls one or two public functions and prints the result
(`--json` for scripts). kansoku's parts are imported inside the commands, so `kansoku --help`
costs no more than importing click.
"""

from __future__ import annotations

import os

import click

from kansoku._version import __version__
from kansoku.cli._admin import config, db
from kansoku.cli._alerts import alerts
from kansoku.cli._common import EXIT_CODES_HELP
from kansoku.cli._errors import errors, stats
from kansoku.cli._monitors import monitors
from kansoku.cli._projects import projects
from kansoku.cli._search import logs, traces
from kansoku.cli._serve import dashboard, demo, run, worker
from kansoku.cli._server import server

__all__ = ["cli", "main"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="kansoku")
@click.option(
    "--config", "config_file", metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Configuration file (default: $KANSOKU_CONFIG, else ./kansoku.toml when present).",
)
def cli(config_file: str | None) -> None:
    """kansoku: logs, metrics, traces, errors and alerts for Python web apps and jobs.

    \b
    Start here:
      kansoku demo                 the example shop service with a live dashboard
      kansoku run myapp:app        run your ASGI or WSGI app instrumented, no code change
      kansoku server               take Sentry SDK events and OTLP from any service
      kansoku config check         show the effective settings

    Settings come from KANSOKU_* environment variables and kansoku.toml;
    `kansoku config check --help` lists where each one is read.
    """
    if config_file:
        # settings read the file's path from here, and `kansoku run` workers inherit it
        os.environ["KANSOKU_CONFIG"] = config_file


for command in (demo, run, errors, stats, logs, traces, alerts, monitors, db, config, worker, dashboard, projects,
                server):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `kansoku` script."""
    cli(prog_name="kansoku")
