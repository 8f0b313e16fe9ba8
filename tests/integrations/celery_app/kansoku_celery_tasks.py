"""The Celery app of the integration tests: the web side imports this module, the worker `kansoku_celery_worker.py`."""

from __future__ import annotations

import os
import time

from celery import Celery

import kansoku

app = Celery("kansoku_tests", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_BROKER_URL"])
app.conf.update(worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True, task_default_queue="kansoku-tests")
log = kansoku.get_logger("tasks")


@app.task(name="tasks.add")
def add(x: int, y: int) -> int:
    """Adds, and logs a line (which carries the task's ids)."""
    log.info("adding", x=x, y=y)
    return x + y


@app.task(name="tasks.fail")
def fail(order_id: int, password: str = "") -> None:
    """Always fails, with the order id in the message."""
    raise ValueError(f"order {order_id} cannot be paid")


@app.task(name="tasks.flaky", bind=True, max_retries=3)
def flaky(self: object) -> int:
    """Asks for two retries, then succeeds."""
    retries = int(self.request.retries)  # type: ignore[attr-defined]
    if retries < 2:
        raise self.retry(countdown=0)  # type: ignore[attr-defined]
    return retries


@app.task(name="tasks.pid")
def pid() -> int:
    """The pid of the process that ran it (a little work, so both prefork children get some)."""
    time.sleep(0.05)
    return os.getpid()
