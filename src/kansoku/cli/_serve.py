"""Commands that serve: `demo`, `run` (any ASGI app, instrumented), `worker`, `dashboard`."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import click

from kansoku.cli._common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    check_port_free,
    load_settings_or_exit,
    warn,
    warn_open_dashboard,
)

HOST_HELP = "Address to listen on (0.0.0.0: every interface; then set KANSOKU_DASHBOARD_TOKEN)."


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--traffic/--no-traffic", default=True, show_default=True,
              help="Drive a realistic mix of calls, failures included, with a progress line on stderr.")
@click.option("--rate", default=10.0, show_default=True, type=click.FloatRange(0.1, 1000),
              help="Traffic: requests per second.")
@click.option("--database-url", metavar="URL",
              help="Store URL (default: sqlite:///.kansoku/kansoku.db in the current directory).")
def demo(host: str, port: int, traffic: bool, rate: float, database_url: str | None) -> None:
    """Run the example shop service, fully instrumented, with a dashboard and live traffic.

    The chapter's example services (users, orders, data processing, payments) as one FastAPI
    app. Logs, metrics, traces, errors and alerts are all on; the store, log files and alert
    deliveries go to .kansoku/ in the current directory. Alerts go to the `log` channel, and to
    any e-mail or Slack channel configured in kansoku.toml. Ctrl-C stops it, flushing everything.

    \b
    Examples:
      kansoku demo                           # http://127.0.0.1:8000, traffic on
      kansoku demo --port 9000 --no-traffic  # quiet; call the API yourself
      KANSOKU_DASHBOARD_TOKEN=s3cret kansoku demo --host 0.0.0.0
    """
    try:
        from kansoku.demo.runner import run_demo
    except ImportError as exc:
        if exc.name != "fastapi":
            raise
        raise CliError("the demo is a FastAPI app and FastAPI is not installed: pip install 'kansoku[fastapi]'",
                       EXIT_FAILURE) from None

    overrides = {"database_url": database_url} if database_url else {}
    settings = load_settings_or_exit(**overrides)  # an invalid kansoku.toml stops here, with the reason
    check_port_free(host, port)
    warn_open_dashboard(host, settings)
    try:
        run_demo(host=host, port=port, traffic=traffic, rate=rate, overrides=overrides)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise CliError("the demo did not start: see the error above", EXIT_FAILURE) from None


@click.command()
@click.argument("target", metavar="MODULE:APP")
@click.option("--factory", is_flag=True, help="MODULE:APP is a function that returns the app.")
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 512),
              help="Worker processes; above 1, metrics use prometheus_client's multiprocess mode.")
@click.option("--reload", is_flag=True, help="Restart when a Python file changes (development; one worker).")
@click.option("--env-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Load environment variables (KANSOKU_*, the app's own) from this file first.")
@click.option("--app-dir", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="Directory to import MODULE from.")
def run(target: str, factory: bool, host: str, port: int, workers: int, reload: bool,
        env_file: str | None, app_dir: str) -> None:
    """Run any ASGI or WSGI app, instrumented, with no change to its code.

    ASGI apps (FastAPI, Starlette, Litestar, Django's asgi.py) run under uvicorn, WSGI apps
    (Flask, Django's wsgi.py, any WSGI callable) under gunicorn; the app is imported first to
    tell which. Each gets `kansoku.instrument(app)` and its framework's integration (route
    templates, the failures it renders itself). /metrics, /health, /ready and the dashboard
    (/kansoku/) are added; an ASGI app's own lifespan runs as before. With --workers N, each
    worker is instrumented and /metrics adds up every worker's samples.

    \b
    Examples:
      kansoku run myapp:app
      kansoku run mysite.asgi:application
      kansoku run flaskapp:app --workers 4 --host 0.0.0.0
      kansoku run myapp.main:create_app --factory --port 9000
      kansoku run myapp:app --workers 4 --env-file prod.env
      kansoku run myapp:app --reload
    """
    from kansoku.runtime import load as _run

    if reload and workers > 1:
        raise CliError("--reload runs one process; drop --workers or --reload", EXIT_USAGE)
    if env_file:
        _load_env_file(env_file)
    settings = load_settings_or_exit()
    app_path = str(Path(app_dir).resolve())
    sys.path.insert(0, app_path)
    try:
        _run.find_module(target)
    except _run.LoadError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    check_port_free(host, port)
    warn_open_dashboard(host, settings)
    # Each worker says "serving" once it has imported the app: not before, when the import may fail.
    worker = " (worker {pid})" if workers > 1 else ""
    banner = (f"kansoku run: serving {target} on http://{host}:{port}{worker}; "
              f"metrics /metrics, health /health, dashboard {settings.route_prefix}/")
    os.environ.update({_run.ENV_TARGET: target, _run.ENV_FACTORY: "1" if factory else "0",
                       _run.ENV_APP_DIR: app_path, _run.ENV_BANNER: banner})
    made_dir = _multiprocess_dir(settings.multiprocess_dir) if workers > 1 else None
    try:
        interface = _import_target(_run, target, factory)
        server = "uvicorn" if interface == "asgi" else "gunicorn"
        plural = "s" if workers > 1 else ""
        warn(f"kansoku run: {target} is {'an ASGI' if interface == 'asgi' else 'a WSGI'} app: starting "
             f"{server} with {workers} worker{plural} on http://{host}:{port}")
        _serve(_run, interface, target, host=host, port=port, workers=workers, reload=reload, app_path=app_path)
    finally:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)


def _import_target(run_module: Any, target: str, factory: bool) -> str:
    """Import the target to tell ASGI from WSGI; its own import error stops here, before serving."""
    try:
        return str(run_module.detect(target, factory=factory))
    except run_module.LoadError as exc:  # exit 1, as when a worker could not load it (import errors too)
        raise CliError(str(exc), EXIT_FAILURE) from None
    except Exception:  # the factory (--factory) failed
        traceback.print_exc()
        raise CliError(f"{target} failed to build the app: see the traceback above", EXIT_FAILURE) from None


def _serve(run_module: Any, interface: str, target: str, *, host: str, port: int, workers: int, reload: bool,
           app_path: str) -> None:
    try:
        if interface == "wsgi":
            run_module.serve_wsgi(host=host, port=port, workers=workers, reload=reload)
            return
        import uvicorn

        uvicorn.run("kansoku.runtime.load:create_app", factory=True, host=host, port=port, workers=workers,
                    reload=reload, reload_dirs=[app_path] if reload else None, log_config=None)
    except run_module.LoadError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise CliError(f"{target} did not start: see the error above", EXIT_FAILURE) from None


def _load_env_file(path: str) -> None:
    from dotenv import load_dotenv  # a dependency of pydantic-settings

    load_dotenv(path)  # like uvicorn: variables already set in the environment win


def _multiprocess_dir(configured: Path | None) -> Path | None:
    """Give the workers an empty multiprocess directory; return it when it is ours to remove.

    Workers inherit PROMETHEUS_MULTIPROC_DIR (Settings.multiprocess_dir reads it). Files left by a
    previous run would be added in, so a configured directory is emptied first; without one, a
    temporary directory is made, and removed at exit.
    """
    from kansoku.metrics import _multiprocess

    path = configured if configured is not None else Path(tempfile.mkdtemp(prefix="kansoku-metrics-"))
    _multiprocess.prepare(path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())
    return None if configured is not None else path


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due and apply retention once, then exit (cron).")
@click.option("--database-url", metavar="URL", help="Store URL (default: KANSOKU_DATABASE_URL).")
def worker(once: bool, database_url: str | None) -> None:
    """Deliver alerts and apply retention, out of the app processes.

    Runs the alert dispatcher (outbox -> channels, with retries) and deletes events, spans and
    deliveries older than the retention settings. Run it beside apps that share one store and set
    KANSOKU_ALERT_DISPATCHER=false in the apps. Several workers may run: outbox rows are claimed
    in the store, so each notification is sent once.

    \b
    Examples:
      KANSOKU_DATABASE_URL=postgresql+psycopg://kansoku@db/kansoku kansoku worker
      kansoku worker --once        # from cron or a Kubernetes CronJob
    """
    from kansoku.cli._standalone import run_worker

    settings = load_settings_or_exit(database_url=database_url)
    run_worker(settings, once=once)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--database-url", metavar="URL", help="Store URL (default: KANSOKU_DATABASE_URL).")
def dashboard(host: str, port: int, database_url: str | None) -> None:
    """Serve the dashboard and the JSON API over a shared store, without an app.

    For deployments where several app instances write to one PostgreSQL store. The same
    authorization applies: KANSOKU_DASHBOARD_TOKEN, or loopback clients only when it is unset.

    \b
    Examples:
      KANSOKU_DATABASE_URL=postgresql+psycopg://kansoku@db/kansoku kansoku dashboard --host 0.0.0.0
      kansoku dashboard --port 9001 --database-url sqlite:///.kansoku/kansoku.db
    """
    import uvicorn

    from kansoku.cli._standalone import build_dashboard

    settings = load_settings_or_exit(database_url=database_url)
    check_port_free(host, port)
    app = build_dashboard(settings)
    warn_open_dashboard(host, settings)
    warn(f"kansoku dashboard on http://{host}:{port}{settings.route_prefix}/")
    uvicorn.run(app, host=host, port=port, log_config=None)
