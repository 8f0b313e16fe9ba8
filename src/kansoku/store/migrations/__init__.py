"""Alembic migrations of the store, run programmatically (no alembic.ini needed).

`upgrade(url)` / `downgrade(url, revision)` / `status(url)` serve `kansoku db ...`;
`upgrade_engine(engine)` is what `Store.open` runs for SQLite. Each run holds the store's write
lock (SQLite) or an advisory lock (PostgreSQL), so instances starting together migrate once.
kansoku's revisions live in their own version table, beside any Alembic history of the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

__all__ = ["VERSION_TABLE", "UnknownRevision", "downgrade", "head", "status", "upgrade", "upgrade_engine"]

VERSION_TABLE: Final = "kansoku_alembic_version"
_LOCK_KEY: Final = 0x6B616E736F6B75  # "kansoku": PostgreSQL advisory lock around migrations
_HERE: Final = Path(__file__).resolve().parent


class UnknownRevision(ValueError):
    """The revision named is not one of kansoku's migrations."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision shipped with this version of kansoku."""
    current = ScriptDirectory.from_config(_config()).get_current_head()
    assert current is not None
    return current


def current_revision(conn: Connection) -> str | None:
    """The revision the store's schema is at (None: no kansoku tables yet)."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _run(engine: Engine, direction: str, revision: str) -> None:
    from kansoku.store import write_transaction

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        try:
            if direction == "upgrade":
                command.upgrade(_config(conn), revision)
            else:
                command.downgrade(_config(conn), revision)
        except CommandError as exc:
            raise UnknownRevision(str(exc)) from None


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Migrate the store behind `engine` up to `revision`."""
    _run(engine, "upgrade", revision)


def _with_engine(url: str, direction: str, revision: str) -> None:
    from kansoku.store import Store

    store = Store(url)
    try:
        _run(store.engine, direction, revision)
    finally:
        store.close()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the store at `url` up to `revision` (`kansoku db upgrade`)."""
    from kansoku.store import _ensure_sqlite_dir

    _ensure_sqlite_dir(url)
    _with_engine(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the store at `url` down to `revision` (`base` drops every kansoku table)."""
    _with_engine(url, "downgrade", revision)


def status(url: str) -> tuple[str | None, str]:
    """(current revision or None, newest revision) of the store at `url`."""
    from kansoku.store import Store

    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return current_revision(conn), head()
    finally:
        store.close()
