"""Fixtures for the store tests: a migrated store on SQLite, and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kansoku.errors.fingerprint import group_key
from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.typing import ErrorEvent

from .pgdb import drop_postgres_database, fresh_postgres_database

T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL: a SQLite file, or (marked postgres) a fresh database on the real server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kansoku.db'}"
        return
    url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The migrated store behind `store_url`."""
    opened = Store.open(load_settings(database_url=store_url), migrate=True)
    yield opened
    opened.close()


KEY = group_key("shop", "test", ["type:ValueError", "frame:app.pay"])


def make_event(n: int, *, key: str = KEY, ts: float | None = None, **fields: Any) -> ErrorEvent:
    """A prepared event (as the tracker hands it to the writer) with id `n`."""
    event = ErrorEvent(
        event_id=f"{n:032x}", timestamp=T0 + n if ts is None else ts, exception_type="ValueError",
        message=f"amount over limit ({n})", group_key=key,
        fingerprint_parts=["type:ValueError", "frame:app.pay"],
        severity="low", category="business_logic", service="shop", environment="test", culprit="app.pay",
        title="ValueError: amount over limit", level="error", handled=True, mechanism="manual",
    )
    event.update(fields)  # type: ignore[typeddict-item]
    return event
