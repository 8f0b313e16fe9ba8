"""`kansoku projects create|list|rotate-key|delete`: the projects a kansoku server ingests into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kansoku.cli._common import (
    DB_URL,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JSON,
    CliError,
    echo_json,
    echo_table,
    format_time,
    load_settings_or_exit,
    open_store,
)

if TYPE_CHECKING:
    from kansoku.store.projects import Project


@click.group()
def projects() -> None:
    """Projects of `kansoku server`: each has a Sentry DSN and an OTLP token.

    Point any Sentry SDK at the DSN, and any OpenTelemetry SDK at the OTLP endpoint with the
    header printed; what they send is grouped, alerted on and shown like kansoku's own data.
    The URL in them is KANSOKU_PUBLIC_URL (default http://127.0.0.1:8000).
    """


def _config(project: Project, public_url: str) -> dict[str, Any]:
    from kansoku.store.projects import ProjectError, sender_config

    try:
        return {**project.as_dict(), **sender_config(project, public_url)}
    except ProjectError as exc:
        raise CliError(f"{exc}: set KANSOKU_PUBLIC_URL", EXIT_USAGE) from None


def _print(data: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        echo_json(data)
        return
    click.echo(f"project {data['name']!r} (id {data['id']}) {verb}\n"
               f"  Sentry DSN:          {data['dsn']}\n"
               f"  OTLP endpoint:       {data['otlp_endpoint']}  (/v1/traces, /v1/logs)\n"
               f"  OTLP headers:        {data['otlp_headers']}\n"
               f"e.g. SENTRY_DSN={data['dsn']}\n"
               f"     OTEL_EXPORTER_OTLP_ENDPOINT={data['otlp_endpoint']} "
               f"OTEL_EXPORTER_OTLP_HEADERS={data['otlp_headers']}")


def _run(database_url: str | None, action: Any, *, read_only: bool = True) -> tuple[Any, str]:
    """`action(engine)` on the store; only `create` may create a store (read_only False)."""
    from kansoku.store.projects import ProjectError

    settings = load_settings_or_exit(database_url=database_url)
    with open_store(settings, read_only=read_only) as store:
        try:
            return action(store.engine), settings.public_url
        except ProjectError as exc:
            code = EXIT_NOT_FOUND if str(exc).startswith("no project") else EXIT_USAGE
            raise CliError(str(exc), code) from None


@projects.command("create")
@click.argument("name")
@click.option("--rate-limit", type=click.IntRange(1), metavar="N",
              help="Events and spans accepted per minute (default: KANSOKU_INGEST_RATE_LIMIT).")
@JSON
@DB_URL
def projects_create(name: str, rate_limit: int | None, as_json: bool, database_url: str | None) -> None:
    """Create a project; print its Sentry DSN, OTLP endpoint and OTLP headers.

    \b
    Examples:
      kansoku projects create checkout-api
      kansoku projects create web --json | jq -r .dsn
    """
    from kansoku.store.projects import create_project

    project, url = _run(database_url, lambda engine: create_project(engine, name, rate_limit=rate_limit),
                        read_only=False)
    _print(_config(project, url), as_json, "created")


@projects.command("list")
@JSON
@DB_URL
def projects_list(as_json: bool, database_url: str | None) -> None:
    """List the projects with their DSNs.

    \b
    Examples:
      kansoku projects list
      kansoku projects list --json | jq -r '.[] | .name + " " + .dsn'
    """
    from kansoku.store.projects import list_projects

    found, url = _run(database_url, list_projects)
    rows = [_config(project, url) for project in found]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no projects yet: kansoku projects create NAME")
        return
    echo_table([{**r, "created_at": format_time(r["created_at"])} for r in rows],
               ["id", "name", "created_at", "rate_limit", "dsn"])


@projects.command("rotate-key")
@click.argument("project", metavar="PROJECT")
@JSON
@DB_URL
def projects_rotate_key(project: str, as_json: bool, database_url: str | None) -> None:
    """Give PROJECT (id or name) a new key; senders with the old one get 401 from now on.

    \b
    Examples:
      kansoku projects rotate-key checkout-api
      kansoku projects rotate-key 3 --json | jq -r .dsn
    """
    from kansoku.store.projects import rotate_key

    rotated, url = _run(database_url, lambda engine: rotate_key(engine, project))
    _print(_config(rotated, url), as_json, "has a new key")


@projects.command("delete")
@click.argument("project", metavar="PROJECT")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@DB_URL
def projects_delete(project: str, yes: bool, database_url: str | None) -> None:
    """Delete PROJECT (id or name) and its keys; what it ingested stays until retention.

    \b
    Examples:
      kansoku projects delete checkout-api
      kansoku projects delete 3 --yes
    """
    from kansoku.store.projects import delete_project

    if not yes:
        click.confirm(f"delete project {project!r}? Its senders will get 401", abort=True)
    deleted, _ = _run(database_url, lambda engine: delete_project(engine, project))
    click.echo(f"project {deleted.name!r} (id {deleted.id}) deleted")
