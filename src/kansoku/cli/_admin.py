"""Commands that administer: `config check`, `db upgrade|downgrade|status`."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from kansoku.cli._common import (
    DB_URL,
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_STORE,
    CliError,
    alerting_or_exit,
    echo_json,
    load_settings_or_exit,
    mask_url,
    missing_sqlite_file,
    monitors_or_exit,
    store_error,
)

if TYPE_CHECKING:
    from kansoku.settings import Settings

JSON_HELP = "Print JSON (for scripts) instead of text."


@click.group()
def config() -> None:
    """Inspect kansoku's configuration."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def config_check(as_json: bool) -> None:
    """Validate the configuration and print the effective settings, secrets masked.

    Settings are read from, highest first: KANSOKU_* environment variables (and the standard
    OTEL_* ones), the TOML file named by KANSOKU_CONFIG (or --config, or ./kansoku.toml), then
    defaults. Alert rules and channels, and monitors, are checked too. An invalid value exits with code 3 and
    a message naming the variable or key, the value and what is allowed.

    \b
    Examples:
      kansoku config check
      kansoku --config prod.toml config check --json | jq .database_url
      KANSOKU_LOG_LEVEL=verbose kansoku config check   # exits 3: says which levels exist
    """
    from kansoku.settings import config_path

    settings = load_settings_or_exit()
    alerting = alerting_or_exit(settings)
    monitors = monitors_or_exit(settings)
    _check_error_rules(settings)
    data = settings.masked()
    data["database_url"] = mask_url(settings.database_url)
    source = config_path(os.environ)
    if as_json:
        echo_json({"valid": True, "config_file": str(source) if source else None, "settings": data,
                   "alert_rules": [rule.name for rule in alerting.rules],
                   "alert_channels": sorted(alerting.channels), "monitors": [m.name for m in monitors]})
        return
    click.echo(f"kansoku configuration: valid (file: {source or 'none'})")
    changed = settings.model_fields_set
    width = max(len(name) for name in data)
    for name, value in data.items():
        mark = "*" if name in changed else " "
        click.echo(f"{mark} {name.ljust(width)} = {_show(value)}")
    click.echo(f"  alert rules: {', '.join(r.name for r in alerting.rules)}")
    click.echo(f"  alert channels: {', '.join(sorted(alerting.channels))}")
    click.echo(f"  monitors: {', '.join(m.name for m in monitors) or 'none in the file'}")
    click.echo("(* set by the environment, the file or an option; the others are defaults)")


def _check_error_rules(settings: Settings) -> None:
    """The [errors] rules (grouping, severity, category) parse; exit 3 naming the bad entry."""
    from kansoku.errors import Classifier
    from kansoku.errors.fingerprint import parse_rules
    from kansoku.exceptions import ConfigError

    try:
        parse_rules(settings.errors.get("fingerprint_rules", ()))
        Classifier.from_config(settings.errors)
    except ConfigError as exc:
        raise CliError(f"{exc}\nFix the [errors] section of the configuration file.", EXIT_CONFIG) from None


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


@click.group()
def db() -> None:
    """Manage the store's schema (Alembic migrations).

    SQLite stores are migrated on start; PostgreSQL stores shared by several instances are
    migrated once, by `kansoku db upgrade`, before the new version starts.
    """




@db.command("upgrade")
@click.argument("revision", default="head")
@DB_URL
def db_upgrade(revision: str, database_url: str | None) -> None:
    """Migrate the store's schema up to REVISION (default: the latest, `head`).

    \b
    Examples:
      kansoku db upgrade
      KANSOKU_DATABASE_URL=postgresql+psycopg://kansoku@db/kansoku kansoku db upgrade
    """
    _migrate("upgrade", revision, database_url)


@db.command("downgrade")
@click.argument("revision")
@DB_URL
def db_downgrade(revision: str, database_url: str | None) -> None:
    """Migrate the store's schema down to REVISION (`base` removes every kansoku table).

    \b
    Examples:
      kansoku db downgrade -1      # one step down
      kansoku db downgrade base    # drop kansoku's tables (data is lost)
    """
    _migrate("downgrade", revision, database_url)


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@DB_URL
def db_status(as_json: bool, database_url: str | None) -> None:
    """Show the store's schema revision and whether it is up to date (exit 4 when behind).

    \b
    Examples:
      kansoku db status
      kansoku db status --json
    """
    from kansoku.store import migrations

    settings = load_settings_or_exit(database_url=database_url)
    try:
        if missing_sqlite_file(settings.database_url) is None:
            current, head = migrations.status(settings.database_url)
        else:  # nothing to read, and a status check creates no store
            current, head = None, migrations.shipped_head() or migrations.head()
    except Exception as exc:
        raise store_error(settings, exc) from None
    data = {"database_url": mask_url(settings.database_url), "current": current, "head": head,
            "up_to_date": current == head}
    if as_json:
        echo_json(data)
    else:
        state = "up to date" if current == head else "behind: run `kansoku db upgrade`"
        click.echo(f"store {data['database_url']}: revision {current or 'none'} (head {head}), {state}")
    if current != head:
        raise SystemExit(EXIT_STORE)  # a gate for deploy scripts: behind is not ready


def _migrate(direction: str, revision: str, database_url: str | None) -> None:
    from kansoku.store import migrations

    settings = load_settings_or_exit(database_url=database_url)
    try:
        step = migrations.upgrade if direction == "upgrade" else migrations.downgrade
        step(settings.database_url, revision)
        current, _ = migrations.status(settings.database_url)
    except migrations.UnknownRevision as exc:
        raise CliError(f"{exc}; `kansoku db status` shows the current one", EXIT_NOT_FOUND) from None
    except Exception as exc:
        raise store_error(settings, exc) from None
    click.echo(f"store {mask_url(settings.database_url)}: now at revision {current or 'none (empty)'}")
