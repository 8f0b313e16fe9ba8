"""Concurrency (must-show): 4 threads in each of 2 processes hammer one group; the count is exact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kansoku.store import Store
from kansoku.store.tables import error_buckets, error_events, error_groups

HAMMER = Path(__file__).with_name("hammer.py")
PROCESSES, THREADS, BATCHES, SIZE, CAPTURES = 2, 4, 40, 5, 25


@pytest.mark.slow
def test_two_processes_of_four_threads_count_exactly(store: Store, store_url: str, tmp_path: Path) -> None:
    """The group's count, its stored events, its hourly buckets and its users are all exact."""
    go = tmp_path / "go"
    args = [str(BATCHES), str(SIZE), str(CAPTURES)]
    procs = [subprocess.Popen([sys.executable, str(HAMMER), store_url, str(go), str(p), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(PROCESSES)]
    go.touch()  # both processes start writing at the same moment
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, results
    expected = PROCESSES * THREADS * (BATCHES * SIZE + CAPTURES)
    with store.engine.connect() as conn:
        groups = conn.execute(select(error_groups.c.count, error_groups.c.users_affected)).all()
        stored = conn.execute(select(func.count()).select_from(error_events)).scalar_one()
        bucketed = conn.execute(select(func.sum(error_buckets.c.count))).scalar_one()
    assert [tuple(g) for g in groups] == [(expected, 7)]
    assert stored == bucketed == expected
