"""Fixtures for the error-tracking tests: a migrated SQLite store, trackers with fixed clock and ids."""

from __future__ import annotations

import importlib.util
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kansoku import _safety
from kansoku.context import clear_context
from kansoku.errors import ErrorTracker
from kansoku.logs import configure_logging
from kansoku.settings import Settings, load_settings
from kansoku.store import Store

T0 = 1_800_000_000.0


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite URL in the test's directory."""
    return f"sqlite:///{tmp_path / 'store' / 'kansoku.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated SQLite store."""
    opened = Store.open(load_settings(database_url=db_url))
    yield opened
    opened.close()


class Clock:
    """A clock that advances one second per reading (deterministic, increasing)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def make_tracker(store: Store) -> Iterator[Callable[..., ErrorTracker]]:
    """Build trackers on the test's store with a fixed clock and sequential ids; closed at the end."""
    made: list[ErrorTracker] = []

    def make(*, engine: Any = "store", clock: Callable[[], float] | None = None,
             **settings: Any) -> ErrorTracker:
        settings.setdefault("service_name", "shop")
        counter, prefix = itertools.count(1), len(made)  # ids unique across the test's trackers
        tracker = ErrorTracker(load_settings(**settings), store.engine if engine == "store" else engine,
                               clock=clock or Clock(), new_id=lambda: f"{prefix:04x}{next(counter):028x}")
        tracker.start()
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close(timeout=5.0)
    clear_context()


@pytest.fixture
def no_internal_errors() -> Iterator[None]:
    """Fail the test if kansoku reported an internal error (the worker thread reports, never raises)."""
    before = _safety.internal_error_counts()
    yield
    after = _safety.internal_error_counts()
    grown = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert grown == {}, f"internal errors reported: {grown}"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """kansoku's log lines (JSON) written to a buffer for the test; the default output after."""
    buffer = io.StringIO()
    configure_logging(load_settings(log_format="json", stdlib_logging=False), stream=buffer)
    yield buffer
    configure_logging(load_settings(log_format="json", stdlib_logging=False))


def load_module(path: Path, source: str, name: str) -> ModuleType:
    """Write `source` to `path` and import it as module `name` (a fresh module each time)."""
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def settings_for(db_url: str, **overrides: Any) -> Settings:
    """Settings on the test's store."""
    return load_settings(database_url=db_url, service_name="shop", **overrides)
