"""The store: SQLite by default, PostgreSQL by URL, one schema owned by Alembic migrations.

`Store.open(settings)` makes the engine (SQLite in WAL mode with a busy timeout and foreign keys;
PostgreSQL through psycopg 3) and, for SQLite, brings the schema up to date. Every part that
writes takes the `Store.engine`, not the Store, so each can be built and tested alone.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from kansoku.exceptions import ConfigError
from kansoku.settings import Settings

__all__ = ["UNTRACED_OPTION", "Store", "create_store_engine", "normalise_url", "write_transaction"]

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
_IMMEDIATE: Final = "kansoku_immediate"
UNTRACED_OPTION: Final = "kansoku_untraced"
"""An execution option: queries on a connection that carries it make no SQL span (every store
engine has it, so kansoku's own writes never show up in the app's traces)."""
_OPTIONS: Final = {UNTRACED_OPTION: True}


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL to use: `postgresql://` and `postgres://` go through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _json_dumps(value: Any) -> str:
    # orjson is several times faster than json for the events' documents; the column stays JSON.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def create_store_engine(url: str) -> Engine:
    """An engine for `url` configured for kansoku (SQLite pragmas, psycopg check, orjson)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401 - only to fail early with the fix
        except ImportError:
            raise ConfigError(
                "KANSOKU_DATABASE_URL is a PostgreSQL URL but psycopg is not installed: "
                "pip install 'kansoku[postgres]'"
            ) from None
        return _fork_safe(create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                        json_serializer=_json_dumps, json_deserializer=orjson.loads,
                                        execution_options=_OPTIONS))
    engine = create_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads,
                           execution_options=_OPTIONS)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
    return _fork_safe(engine)


def _fork_safe(engine: Engine) -> Engine:
    """A forked child (gunicorn --preload, multiprocessing) opens its own connections (SQLAlchemy's
    recipe: the parent's stay the parent's)."""
    if hasattr(os, "register_at_fork"):
        ref = weakref.ref(engine)

        def forget() -> None:
            found = ref()
            if found is not None:
                found.dispose(close=False)

        os.register_at_fork(after_in_child=forget)
    return engine


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    """WAL, busy timeout, foreign keys; SQLAlchemy emits BEGIN itself (see `write_transaction`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # The sqlite3 module's own transaction handling skips BEGIN before SELECT and cannot
        # BEGIN IMMEDIATE; SQLAlchemy's recipe: turn it off and emit BEGIN in the "begin" event.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode up to power loss
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction meant to write: committed on exit, rolled back on error.

    On SQLite the transaction takes the write lock when it begins (BEGIN IMMEDIATE), so a
    read-then-write transaction waits for the busy timeout instead of failing with "database is
    locked" when another process writes at the same time. On a failure the connection is thrown
    away rather than returned to the pool: a connection opened while the file was read-only, or
    cut by a PostgreSQL restart, would otherwise fail again.
    """
    with engine.connect() as conn:
        conn = conn.execution_options(**{_IMMEDIATE: True})
        try:
            with conn.begin():
                yield conn
        except Exception:
            conn.invalidate()
            raise


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


def _ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a file-based SQLite URL (the default `.kansoku/`)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    database = parsed.database
    assert database is not None
    if database.startswith("file:"):  # URI filenames name their own location
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
