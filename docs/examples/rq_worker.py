"""The worker process for docs/examples/rq_tasks.py: `python rq_worker.py` instead of `rq worker`."""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue, SimpleWorker

import kansoku


def main() -> None:
    """Build kansoku's runtime, then work the queue (SimpleWorker: jobs run in this process)."""
    kansoku.setup(service_name="orders-worker")
    redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(burst=bool(os.environ.get("BURST")))


if __name__ == "__main__":
    main()
