"""Alembic migrations of the store, run programmatically (no alembic.ini needed).

`upgrade(url)` / `downgrade(url, revision)` / `status(url)` serve `kansoku db ...`;
`upgrade_engine(engine)` is what `Store.open` runs for SQLite when `is_current` says the schema is
behind. Each run holds the store's write lock (SQLite) or an advisory lock (PostgreSQL), so
instances starting together migrate once. kansoku's revisions live in their own version table,
beside any Alembic history of the app.

Alembic (with Mako and Pygments: about 10 MB and 100 ms) is imported only when a migration runs
or the CLI asks: a worker starting on an up-to-date store reads one row and compares it with the
head that the revision files name.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, inspect, text

from kansoku.store._engine import _ensure_sqlite_dir, create_store_engine, write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["VERSION_TABLE", "UnknownRevision", "downgrade", "head", "is_current", "status", "upgrade",
           "upgrade_engine"]

VERSION_TABLE: Final = "kansoku_alembic_version"
_LOCK_KEY: Final = 0x6B616E736F6B75  # "kansoku": PostgreSQL advisory lock around migrations
_HERE: Final = Path(__file__).resolve().parent


class UnknownRevision(ValueError):
    """The revision named is not one of kansoku's migrations."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision shipped with this version of kansoku."""
    from alembic.script import ScriptDirectory

    current = ScriptDirectory.from_config(_config()).get_current_head()
    assert current is not None
    return current


_REVISION = re.compile(r"^revision(?:: *str)? *= *[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:: *[^=]+)? *= *(.+)$", re.MULTILINE)


@functools.cache
def shipped_head() -> str | None:
    """The head revision as the revision files name it, read without Alembic; None when the
    history is not one line (a merge or branches), and then only Alembic can tell."""
    revisions, parents = set(), set()
    for path in (_HERE / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revision(conn: Connection) -> str | None:
    """The revision the store's schema is at (None: no kansoku tables yet)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608 - a constant
    return rows[0] if len(rows) == 1 else None


def is_current(conn: Connection) -> bool:
    """Whether the schema behind `conn` is at the head revision (one query, no Alembic)."""
    wanted = shipped_head() or head()
    return current_revision(conn) == wanted


def _run(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

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
    engine = create_store_engine(url)
    try:
        _run(engine, direction, revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the store at `url` up to `revision` (`kansoku db upgrade`)."""
    _ensure_sqlite_dir(url)
    _with_engine(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the store at `url` down to `revision` (`base` drops every kansoku table)."""
    _with_engine(url, "downgrade", revision)


def status(url: str) -> tuple[str | None, str]:
    """(current revision or None, newest revision) of the store at `url`."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn), head()
    finally:
        engine.dispose()
