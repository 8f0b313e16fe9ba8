"""The store: SQLite by default, PostgreSQL by URL, one schema owned by Alembic migrations.

`Store.open(settings)` makes the engine (SQLite in WAL mode with a busy timeout and foreign keys;
PostgreSQL through psycopg 3) and, for SQLite, brings the schema up to date. Every part that
writes takes the `Store.engine`, not the Store, so each can be built and tested alone.
"""

from __future__ import annotations

import os

from sqlalchemy import Connection, Engine, text

from kansoku.settings import Settings
from kansoku.store._engine import (
    UNTRACED_OPTION,
    _ensure_sqlite_dir,
    create_store_engine,
    normalise_url,
    write_transaction,
)

__all__ = ["UNTRACED_OPTION", "Store", "create_store_engine", "normalise_url", "write_transaction"]


class Store:
    """The engine of the configured store, and its health check.

    `Store(url)` only builds the engine; `Store.open(settings)` also creates the default
    `.kansoku/` directory and migrates a SQLite store to the latest schema.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = create_store_engine(self.url)
        self._schema_ok = False

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool | None = None) -> Store:
        """Open the store of `settings`; migrate it when `migrate`, by default for SQLite only,
        and only when its schema is behind (one query; Alembic is not even imported otherwise).

        PostgreSQL stores shared by several instances are migrated once, by `kansoku db upgrade`.
        """
        _ensure_sqlite_dir(settings.database_url)
        store = cls(settings.database_url)
        if migrate if migrate is not None else store.dialect == "sqlite":
            from kansoku.store import migrations

            with store.engine.connect() as conn:
                store._schema_ok = migrations.is_current(conn)
            if not store._schema_ok:
                migrations.upgrade_engine(store.engine)
                store._schema_ok = True
        return store

    def ping(self) -> str | None:
        """None when the store answers and can be written; otherwise the problem, in one line."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                schema = None if self._schema_ok else self._schema_problem(conn)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"store unreachable: {type(exc).__name__}: {first}"[:300]
        return schema or _sqlite_unwritable(self.engine)

    def _schema_problem(self, conn: Connection) -> str | None:
        """Whether the schema is the one this kansoku needs (checked until it once is)."""
        from kansoku.store import migrations

        if not migrations.is_current(conn):
            current, head = migrations.current_revision(conn), migrations.shipped_head() or migrations.head()
            at = current or "none"
            return f"store schema at revision {at}, kansoku needs {head}: run `kansoku db upgrade`"
        self._schema_ok = True
        return None

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_unwritable(engine: Engine) -> str | None:
    """Why a SQLite file cannot be written (SELECT works on a read-only file), or None.

    Opening the files for appending writes nothing, and fails exactly when writes would: read-only
    permissions, an immutable file, a read-only mount.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    for path in (database, database + "-wal"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"store not writable: {path}: {exc.strerror}"
        os.close(fd)
    return None
