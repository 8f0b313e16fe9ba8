"""Alembic environment: runs on the connection that `kansoku.store.migrations` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kansoku.store.migrations import VERSION_TABLE
from kansoku.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # `alembic -x url=...` from a checkout, for developers writing a new revision.
    from kansoku.store._engine import create_store_engine

    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///.kansoku/kansoku.db")
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


_main()
