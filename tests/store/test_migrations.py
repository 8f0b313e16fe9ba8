"""The store: engine setup, migrations (SQLite and PostgreSQL), concurrent start-up, URLs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from kansoku.settings import load_settings
from kansoku.store import Store, migrations, normalise_url
from kansoku.store.tables import metadata


def test_migrated_schema_is_exactly_tables_py(store: Store) -> None:
    """After upgrade the database has every table, column, index and constraint of tables.py."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert [d for d in diff if not _not_in_tables_py(d)] == []


def _not_in_tables_py(diff: Any) -> bool:
    """Parts of the schema tables.py cannot say: the version table, the log store's search index
    (SQLite's FTS5 table and its shadow tables, PostgreSQL's GIN index)."""
    if diff[0] == "remove_table":
        return bool(diff[1].name == migrations.VERSION_TABLE or diff[1].name.startswith("kansoku_logs_fts"))
    return bool(diff[0] == "remove_index" and diff[1].name == "ix_kansoku_logs_search")


def test_status_upgrade_and_downgrade(store_url: str) -> None:
    """status reports the revision; downgrade to base drops every kansoku table; upgrade restores them."""
    migrations.upgrade(store_url)
    assert migrations.status(store_url) == (migrations.head(), migrations.head())
    migrations.downgrade(store_url, "base")
    assert migrations.status(store_url) == (None, migrations.head())
    store = Store(store_url)
    assert [t for t in inspect(store.engine).get_table_names() if t != migrations.VERSION_TABLE] == []
    migrations.upgrade(store_url)
    assert set(metadata.tables) <= set(inspect(store.engine).get_table_names())
    store.close()


def test_unknown_revision(store_url: str) -> None:
    """An unknown revision is UnknownRevision (the CLI says so), not a traceback."""
    with pytest.raises(migrations.UnknownRevision):
        migrations.upgrade(store_url, "9999")


@pytest.mark.slow
def test_processes_starting_together_migrate_once(store_url: str, tmp_path: Path) -> None:
    """Several processes opening a new store at the same moment all succeed (the migration is locked)."""
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import os, time
        from kansoku.settings import load_settings
        from kansoku.store import Store
        while not os.path.exists({str(go)!r}):
            time.sleep(0.002)
        Store.open(load_settings(database_url={store_url!r}), migrate=True).close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    go.touch()
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert migrations.status(store_url)[0] == migrations.head()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """SQLite runs in WAL mode, with a busy timeout and foreign keys on."""
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    with store.engine.connect() as conn:
        pragmas = [conn.execute(text(f"PRAGMA {name}")).scalar() for name in ("journal_mode", "busy_timeout",
                                                                               "foreign_keys")]
    store.close()
    assert pragmas == ["wal", 10_000, 1]


def test_default_url_creates_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default store `.kansoku/kansoku.db` is created (with its directory) and migrated on open."""
    monkeypatch.chdir(tmp_path)
    store = Store.open(load_settings())
    assert store.ping() is None
    store.close()
    assert (tmp_path / ".kansoku" / "kansoku.db").is_file()
    assert migrations.status("sqlite:///.kansoku/kansoku.db")[0] == migrations.head()


def test_postgres_urls_use_psycopg() -> None:
    """postgresql:// and postgres:// URLs are served by psycopg 3."""
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.postgres
def test_postgres_is_not_migrated_on_open_unless_asked(postgres_url: str) -> None:
    """Shared PostgreSQL stores are migrated by `kansoku db upgrade`; until then ping() says so."""
    from .pgdb import drop_postgres_database, fresh_postgres_database

    url = fresh_postgres_database(postgres_url)
    try:
        store = Store.open(load_settings(database_url=url.replace("postgresql+psycopg://", "postgresql://")))
        assert store.dialect == "postgresql"
        needs = migrations.head()
        assert store.ping() == f"store schema at revision none, kansoku needs {needs}: run `kansoku db upgrade`"
        migrations.upgrade(url)
        assert store.ping() is None
        store.close()
    finally:
        drop_postgres_database(url)


def test_shipped_head_is_alembics_head() -> None:
    """The head read from the revision files without Alembic is the one Alembic computes."""
    assert migrations.shipped_head() == migrations.head()


def test_opening_an_up_to_date_store_does_not_load_alembic(tmp_path: Path) -> None:
    """A worker starting on a store at the head revision checks it with one query: no Alembic import."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    migrations.upgrade(url)
    script = textwrap.dedent(f"""
        import sys
        from kansoku.settings import load_settings
        from kansoku.store import Store
        store = Store.open(load_settings(database_url={url!r}))
        assert store.ping() is None, store.ping()
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("alembic", "mako")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_store_behind_is_migrated_on_open(tmp_path: Path) -> None:
    """A SQLite store whose schema is behind (here: at base) is brought to the head on open."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    migrations.upgrade(url)
    migrations.downgrade(url, "base")
    store = Store.open(load_settings(database_url=url))
    assert store.ping() is None
    store.close()
    assert migrations.status(url) == (migrations.head(), migrations.head())
