"""O(1) per event: the store work for the next events does not depend on how much history there is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event

from kansoku.alerts import AlertEngine, parse_alerting

RULES = {"rules": [{"name": "crit", "severity_threshold": "critical", "error_count_threshold": 3},
                   {"name": "burst", "kind": "frequency", "error_count_threshold": 50}]}


def _statements_for_next_events(kit: Any, path: Path, history: int) -> int:
    store = kit.make_engine(path)
    clock = kit.Clock(kit.T0 - 3600)
    engine = AlertEngine(parse_alerting(RULES), store, clock=clock)
    for i in range(history):
        engine.on_error(kit.event(f"g{i % 20}"), kit.change(f"g{i % 20}"))
        clock.advance(3000 / history)
    engine.flush()
    clock.now = kit.T0
    count = [0]
    sa_event.listen(store, "before_cursor_execute", lambda *a: count.__setitem__(0, count[0] + 1))
    for i in range(1000):
        group = f"new{i}" if i % 100 == 0 else f"g{i % 20}"
        engine.on_error(kit.event(group), kit.change(group))
        clock.advance(0.01)
    store.dispose()
    return count[0]


def test_store_work_is_independent_of_history(kit: Any, tmp_path: Path) -> None:
    """1,000 events after 200 or after 20,000 events of history run the same number of statements."""
    small = _statements_for_next_events(kit, tmp_path / "small.db", 200)
    large = _statements_for_next_events(kit, tmp_path / "large.db", 20_000)
    assert small == large
    assert small < 1000  # far fewer than one statement per event: suppressed events stay in memory
