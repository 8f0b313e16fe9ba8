"""Alert rule evaluation cost per event, with 1,000 and with 100,000 events of history.

The chapter's check scanned the whole history for every event and rule (O(history)); kansoku's
engine keeps a ring of per-minute counts per (rule, group) and claims suppression with one indexed
statement, so the cost per event must not grow with the history. For each history size this builds
a fresh SQLite store holding that many stored events over 100 groups (what the chapter would scan),
feeds the same events through the engine (warm counters, state rows, outbox rows), then times
`AlertEngine.on_error` with the chapter's four rules plus a frequency rule, for a mix of events:
mostly repeats of firing groups (suppressed), and one in 200 of a new group (a claim and outbox rows
in one transaction). Median of several rounds; prints both and the ratio.

    python bench/alerts/bench_alerts.py [--events 20000] [--rounds 7] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from kansoku.alerts import AlertEngine, parse_alerting
from kansoku.store import create_store_engine, write_transaction
from kansoku.store.tables import error_events, error_groups, metadata

START = 1_800_000_000.0
GROUPS = 100
CATEGORIES = ("application", "database", "security", "performance")
SEVERITIES = ("medium", "high", "critical", "emergency")


def _event(group: str, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {"event_id": f"e{i}", "exception_type": "ValueError", "message": "amount over limit",
             "group_key": group, "severity": SEVERITIES[i % 4], "category": CATEGORIES[i % 4],
             "service": "shop", "environment": "bench", "tags": {}}
    change = {"group_key": group, "group_id": 1, "new": False, "regression": False, "count": i,
              "status": "unresolved"}
    return event, change


def _store_history(engine: Any, history: int, groups: int) -> None:
    """The stored events the chapter's check would have scanned."""
    with write_transaction(engine) as conn:
        conn.execute(insert(error_groups), [
            {"id": g + 1, "group_key": f"g{g}", "fingerprint_parts": [], "title": "ValueError", "culprit": "",
             "exception_type": "ValueError", "message": "", "severity": "high", "category": "application",
             "service": "shop", "environment": "bench", "status": "unresolved", "first_seen": START,
             "last_seen": START, "count": 0} for g in range(groups)])
        for start in range(0, history, 5000):
            conn.execute(insert(error_events), [
                {"event_id": f"h{i}", "group_id": i % groups + 1,
                 "timestamp": START - 3600 + i * 3600 / history, "severity": "high",
                 "category": "application", "data": {"message": "amount over limit"}}
                for i in range(start, min(history, start + 5000))])


def measure(history: int, events: int, rounds: int, workdir: Path) -> float:
    """Median seconds per `on_error` call after `history` events."""
    workdir.mkdir(exist_ok=True)
    engine = create_store_engine(f"sqlite:///{workdir / f'bench-{history}.db'}")
    metadata.create_all(engine)
    groups = GROUPS  # the same groups for both sizes: only the history's length differs
    _store_history(engine, history, groups)
    now = [START - 3600.0]
    config = parse_alerting({"rules": [
        {"name": "emergency_errors", "severity_threshold": "emergency", "time_window_minutes": 1,
         "suppression_minutes": 5},
        {"name": "critical_errors", "severity_threshold": "critical", "error_count_threshold": 3,
         "suppression_minutes": 30},
        {"name": "security_incidents", "severity_threshold": "medium", "categories": ["security"],
         "time_window_minutes": 1, "suppression_minutes": 15},
        {"name": "performance_degradation", "severity_threshold": "high", "categories": ["performance"],
         "error_count_threshold": 10, "suppression_minutes": 120},
        {"name": "burst", "kind": "frequency", "error_count_threshold": 500, "suppression_minutes": 10},
    ]})
    alerts = AlertEngine(config, engine, clock=lambda: now[0])
    step = 3600.0 / history
    for i in range(history):  # the history also went through the engine: warm counters and state rows
        alerts.on_error(*_event(f"g{i % groups}", i))
        now[0] += step
    alerts.flush()
    with engine.connect() as conn:  # the history's writes are checkpointed now, not inside the timing
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    timings = []
    fresh = 0
    for _ in range(rounds):
        batch = []
        for i in range(events):
            if i % 200 == 0:  # a new group: this one fires (claim, outbox rows)
                fresh += 1
                batch.append(_event(f"new{fresh}", i))
            else:
                batch.append(_event(f"g{i % groups}", i))
        started = time.perf_counter()
        for event, change in batch:
            alerts.on_error(event, change)  # type: ignore[arg-type]
            now[0] += 0.01
        timings.append((time.perf_counter() - started) / events)
    engine.dispose()
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events timed per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--check", action="store_true", help="exit 1 when the ratio exceeds 1.2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kansoku-bench-alerts.") as tmp:
        measure(1_000, args.events // 4, 1, Path(tmp) / "warm")  # imports, statement caches: not timed
        small = measure(1_000, args.events, args.rounds, Path(tmp))
        large = measure(100_000, args.events, args.rounds, Path(tmp))
    ratio = large / small
    print(f"rule evaluation per event, history   1,000 events: {small * 1e6:8.2f} us")
    print(f"rule evaluation per event, history 100,000 events: {large * 1e6:8.2f} us")
    print(f"ratio (100,000 / 1,000): {ratio:.3f}  (limit 1.2)")
    return 1 if args.check and ratio > 1.2 else 0


if __name__ == "__main__":
    sys.exit(main())
