"""The job metrics: one family each, labelled by job (or Celery task) name and outcome.

| metric | labels | what |
|---|---|---|
| `kansoku_job_runs_total` | job, status | finished runs; status `ok`, `error`, `retry` or `cancelled` |
| `kansoku_job_failures_total` | job, exception | runs that raised, by exception type |
| `kansoku_job_retries_total` | job | retries asked for (Celery's `self.retry()`, `autoretry_for`) |
| `kansoku_job_duration_seconds` | job, status | run time, start to end |
| `kansoku_job_queue_wait_seconds` | job | enqueued to started (when the queue says when it enqueued) |
| `kansoku_job_in_progress` | job | runs going on now (summed over live processes) |

Job names come from code (a task's name, a literal), so they are bounded like routes; a name
computed per run (with an id in it) makes one series per id: put the id in `run_id` instead.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from prometheus_client import CollectorRegistry

from kansoku import metrics

__all__ = ["DURATION_BUCKETS", "JobMetrics"]

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                           600.0, 1800.0, 3600.0)


class JobMetrics:
    """The job metric families in one registry, with their labelled children cached."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs = metrics.counter("kansoku_job_runs", "Finished job runs, by job and status.", ("job", "status"),
                                    registry=registry)
        self.failures = metrics.counter("kansoku_job_failures", "Job runs that raised, by job and exception type.",
                                        ("job", "exception"), registry=registry)
        self.retries = metrics.counter("kansoku_job_retries", "Job retries asked for, by job.", ("job",),
                                       registry=registry)
        self.duration = metrics.histogram("kansoku_job_duration_seconds", "Job run time, by job and status.",
                                          ("job", "status"), buckets=DURATION_BUCKETS, registry=registry)
        self.queue_wait = metrics.histogram("kansoku_job_queue_wait_seconds",
                                            "Time from enqueue to start of a job run, by job.", ("job",),
                                            buckets=DURATION_BUCKETS, registry=registry)
        self.in_progress = metrics.gauge("kansoku_job_in_progress", "Job runs going on now, by job.", ("job",),
                                         registry=registry, multiprocess_mode="livesum")
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def _child(self, family: Any, *labels: str) -> Any:
        key = (family._name, *labels)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children[key] = family.labels(*labels)
        return child

    def started(self, job: str, queue_wait: float | None) -> None:
        """A run began (after `queue_wait` seconds in its queue, when known)."""
        self._child(self.in_progress, job).inc()
        if queue_wait is not None:
            self._child(self.queue_wait, job).observe(max(queue_wait, 0.0))

    def finished(self, job: str, status: str, seconds: float, exception: str | None) -> None:
        """A run ended with `status` after `seconds`; `exception` is the type name when it raised."""
        self._child(self.in_progress, job).dec()
        self._child(self.runs, job, status).inc()
        self._child(self.duration, job, status).observe(seconds)
        if exception is not None:
            self._child(self.failures, job, exception).inc()
        if status == "retry":
            self._child(self.retries, job).inc()
