"""Engines for the store: the URL forms, SQLite's pragmas, write transactions, fork safety.

The parts below `Store` that migrations and writers need without the `Store` itself (and so
without importing the package that imports the migrations).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from kansoku.exceptions import ConfigError

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
