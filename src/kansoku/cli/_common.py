"""What every command shares: exit codes, errors that say what to do, settings, store, output.

Nothing here imports more than click and the standard library at module level, so that
`kansoku --help` stays fast; kansoku's parts are imported inside the functions that need them.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import click

if TYPE_CHECKING:
    from kansoku.alerts import AlertingConfig
    from kansoku.settings import Settings
    from kansoku.store import Store

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
EXIT_STORE: Final = 4
EXIT_NOT_FOUND: Final = 5

EXIT_CODES_HELP: Final = """\b
Exit codes:
  0  success
  1  the operation failed (a delivery, the server did not start)
  2  bad arguments (usage)
  3  invalid configuration (kansoku.toml, KANSOKU_* variables)
  4  the store is unreachable or its schema is not up to date
  5  not found (error group, channel, revision)"""


class CliError(click.ClickException):
    """An error the user can act on: the message says what happened and what to do next."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance; its stub says ClassVar


def load_settings_or_exit(**overrides: Any) -> Settings:
    """The effective settings; an invalid configuration exits with EXIT_CONFIG and the reason."""
    from kansoku.exceptions import ConfigError
    from kansoku.settings import load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise CliError(
            f"{exc}\nFix the value named above (a KANSOKU_* variable or a key in kansoku.toml), "
            "then check with `kansoku config check`.",
            EXIT_CONFIG,
        ) from None


def alerting_or_exit(settings: Settings) -> AlertingConfig:
    """The alert rules and channels of `settings`; an invalid [alerts] section exits with EXIT_CONFIG."""
    from kansoku.alerts import load_alerting
    from kansoku.exceptions import ConfigError

    try:
        return load_alerting(settings)
    except ConfigError as exc:
        raise CliError(f"{exc}\nFix the [alerts] section of the configuration file.", EXIT_CONFIG) from None


def monitors_or_exit(settings: Settings) -> tuple[Any, ...]:
    """The monitors of kansoku.toml; an invalid [[monitors]] table exits with EXIT_CONFIG."""
    from kansoku.exceptions import ConfigError
    from kansoku.monitors import parse_monitors

    try:
        return parse_monitors(settings.monitors)
    except ConfigError as exc:
        raise CliError(f"{exc}\nFix the [[monitors]] tables of the configuration file.", EXIT_CONFIG) from None


def open_store_or_exit(settings: Settings, *, ping: bool = False, read_only: bool = False) -> Store:
    """The store of `settings` (migrated when SQLite); unusable -> EXIT_STORE with the fix.

    `read_only`: a command that only reads (or changes what is there) never creates a store: a
    SQLite file that does not exist, a mistyped path say, exits EXIT_STORE naming it.
    """
    from kansoku.exceptions import ConfigError
    from kansoku.store import Store

    missing = missing_sqlite_file(settings.database_url) if read_only else None
    if missing is not None:
        raise CliError(
            f"no store at {missing}: the file does not exist, so nothing was recorded there\n"
            "Check KANSOKU_DATABASE_URL (or --database-url): an instrumented app creates its store "
            "when it starts.",
            EXIT_STORE,
        )
    try:
        store = Store.open(settings)
    except ConfigError as exc:  # a PostgreSQL URL without the driver installed, say
        raise CliError(str(exc), EXIT_CONFIG) from None
    except Exception as exc:  # any driver error means the same thing to the user
        raise store_error(settings, exc) from None
    problem = store.ping() if ping else None
    if problem is not None:
        store.close()
        raise store_error(settings, RuntimeError(problem))
    return store


def missing_sqlite_file(url: str) -> str | None:
    """The path of a file-based SQLite URL whose file does not exist, else None."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL: opening the store says so
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else str(path)


@contextmanager
def open_store(settings: Settings, *, read_only: bool = False) -> Iterator[Store]:
    """The store of `settings`, closed on exit; unusable -> EXIT_STORE with the fix (`read_only`:
    as `open_store_or_exit`'s)."""
    store = open_store_or_exit(settings, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def store_error(settings: Settings, exc: BaseException) -> CliError:
    """The message for a store that cannot be used, with the URL's password masked."""
    return CliError(
        f"cannot use the store at {mask_url(settings.database_url)}: {first_line(exc)}\n"
        "Check KANSOKU_DATABASE_URL (or --database-url), that the database server is running, "
        "and that the schema is current (`kansoku db upgrade`).",
        EXIT_STORE,
    )


def mask_url(url: str) -> str:
    """A database URL with its password replaced by '***' (SQLAlchemy's own rendering)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<unparsable database URL>"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, prefixed by its type (driver errors are long)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, when something already listens on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use; stop the other server or pass --port N",
                    EXIT_FAILURE,
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}; check --host", EXIT_USAGE) from None


# Options several commands share.
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
DB_URL = click.option("--database-url", metavar="URL", help="Store URL (default: KANSOKU_DATABASE_URL).")


def echo_json(data: Any) -> None:
    """Print `data` as indented JSON (for scripts: `--json`)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False))


def echo_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as aligned columns, headed by the column names."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for row_cells in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 60 else text[:59] + "…"


def format_time(epoch: float | None) -> str:
    """Epoch seconds as 'YYYY-MM-DD HH:MM:SS' UTC (empty for None)."""
    import time

    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def warn(message: str) -> None:
    """A note on stderr (never mixed into `--json` output on stdout)."""
    click.echo(message, err=True)


def warn_open_dashboard(host: str, settings: Any) -> None:
    """Say loudly when the server listens beyond loopback with no dashboard token: the dashboard
    then answers 403 to everyone else, and a proxy in front of it must not make it look local."""
    from kansoku.web.auth import is_loopback_host

    if settings.dashboard_token is None and not is_loopback_host(host):
        warn(f"kansoku: WARNING: listening on {host} with no KANSOKU_DASHBOARD_TOKEN. The dashboard and API "
             "answer loopback clients only (403 to everyone else, and to requests that look proxied). "
             "Set KANSOKU_DASHBOARD_TOKEN to use them from other machines or behind a reverse proxy.")
