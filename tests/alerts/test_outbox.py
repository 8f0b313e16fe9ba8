"""The outbox: atomic claims across workers (SQLite and PostgreSQL), leases, backoff, dead letters."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kansoku.alerts import outbox
from kansoku.store import write_transaction
from kansoku.store.tables import outbox as table


def _fill(store: Engine, n: int, now: float) -> None:
    with write_transaction(store) as conn:
        for i in range(n):
            outbox.enqueue(conn, channel="c", rule="r", group_key=f"g{i}", kind="trigger",
                           idempotency_key=f"k{i}", payload={"i": i}, now=now)


def _claim_concurrently(store: Engine, now: float, workers: int = 4) -> list[list[int]]:
    taken: list[list[int]] = [[] for _ in range(workers)]
    start = threading.Barrier(workers)

    def work(index: int) -> None:
        start.wait()
        while rows := outbox.claim(store, f"w{index}", now, limit=7):
            taken[index].extend(row.id for row in rows)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return taken


def _assert_disjoint_and_complete(taken: list[list[int]], n: int) -> None:
    every = [i for ids in taken for i in ids]
    assert len(every) == len(set(every)) == n


def test_concurrent_claims_are_disjoint_sqlite(store: Engine, clock: Any) -> None:
    """Four dispatchers on one SQLite file never take the same row, and take them all."""
    _fill(store, 200, clock())
    _assert_disjoint_and_complete(_claim_concurrently(store, clock()), 200)


@pytest.mark.postgres
def test_concurrent_claims_are_disjoint_postgres(pg_store: Engine, clock: Any) -> None:
    """The same on PostgreSQL (FOR UPDATE SKIP LOCKED)."""
    _fill(pg_store, 200, clock())
    _assert_disjoint_and_complete(_claim_concurrently(pg_store, clock()), 200)


def test_lease_expiry_lets_another_dispatcher_take_over(store: Engine, clock: Any) -> None:
    """A dead dispatcher's rows are taken again after the lease; the late one cannot mark them."""
    _fill(store, 1, clock())
    [row] = outbox.claim(store, "dead-worker", clock(), lease=60)
    assert outbox.claim(store, "w2", clock() + 59) == []
    [again] = outbox.claim(store, "w2", clock() + 61)
    assert (again.id, again.attempts) == (row.id, 2)
    assert outbox.mark_sent(store, [row.id], "dead-worker", clock() + 62, None) == 0
    assert outbox.mark_sent(store, [row.id], "w2", clock() + 62, None) == 1


def test_backoff_is_exponential_capped_and_jittered() -> None:
    """Delays double per attempt, half of each is jitter, and they stop growing at the cap."""
    low = [outbox.backoff_delay(a, rng=lambda: 0.0) for a in range(1, 6)]
    high = [outbox.backoff_delay(a, rng=lambda: 1.0) for a in range(1, 6)]
    assert low == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert high == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert outbox.backoff_delay(30, rng=lambda: 1.0) == outbox.BACKOFF_CAP


def test_retry_after_is_honoured_and_last_attempt_is_dead(store: Engine, clock: Any) -> None:
    """A 429's Retry-After delays the next try at least that long; after max attempts the row is dead."""
    _fill(store, 1, clock())
    [row] = outbox.claim(store, "w", clock())
    status = outbox.mark_failed(store, [row.id], "w", clock(), "429", attempts=row.attempts, max_attempts=3,
                                retry_after=120, rng=lambda: 0.5)
    with store.connect() as conn:
        next_at = conn.execute(select(table.c.next_attempt_at)).scalar_one()
    assert (status, next_at) == ("pending", clock() + 120)
    for _ in range(2):
        clock.advance(3600)
        [row] = outbox.claim(store, "w", clock())
        status = outbox.mark_failed(store, [row.id], "w", clock(), "boom", attempts=row.attempts,
                                    max_attempts=3)
    assert status == "dead"
    assert outbox.claim(store, "w", clock() + 10**6) == []
    assert outbox.retry_dead(store, row.id, clock())
    assert not outbox.retry_dead(store, row.id, clock())
    [back] = outbox.claim(store, "w", clock())
    assert back.attempts == 1


def _row(store: Engine, kind: str, key: str, now: float, group: str = "g") -> int:
    with write_transaction(store) as conn:
        return outbox.enqueue(conn, channel="c", rule="r", group_key=group, kind=kind, idempotency_key=key,
                              payload={}, now=now)


def _status(store: Engine, row_id: int) -> str:
    with store.connect() as conn:
        return str(conn.execute(select(table.c.status).where(table.c.id == row_id)).scalar_one())


def test_a_trigger_older_than_a_queued_resolution_is_superseded(store: Engine, clock: Any) -> None:
    """An unsent trigger is never sent once its alert's resolution is queued; other groups still go."""
    stale = _row(store, "trigger", "t1", clock())
    other = _row(store, "trigger", "t2", clock(), group="other")
    resolve = _row(store, "resolve", "r1", clock())
    assert [r.id for r in outbox.claim(store, "w", clock())] == [other, resolve]
    assert _status(store, stale) == "superseded"


def test_rows_about_one_alert_go_out_one_at_a_time_in_order(store: Engine, clock: Any) -> None:
    """A new trigger waits until the older resolution of the same alert was sent."""
    resolve = _row(store, "resolve", "r1", clock())
    trigger = _row(store, "trigger", "t1", clock())
    assert [r.id for r in outbox.claim(store, "w", clock())] == [resolve]
    assert outbox.claim(store, "w", clock()) == []  # the resolution is still being sent
    outbox.mark_sent(store, [resolve], "w", clock(), None)
    assert [r.id for r in outbox.claim(store, "w", clock())] == [trigger]
