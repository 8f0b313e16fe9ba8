"""An RQ job run under kansoku (docs/jobs.md): a span, metrics, error grouping and log context per run."""

from __future__ import annotations

from rq import get_current_job

import kansoku

log = kansoku.get_logger(__name__)


def import_orders(day: str) -> int:
    """Import one day of orders; RQ's job id is the run id in logs, spans and error events."""
    rq_job = get_current_job()
    with kansoku.job("import-orders", run_id=rq_job.id if rq_job else None):
        log.info("importing orders", day=day)
        if day == "1970-01-01":
            raise ValueError(f"no orders on {day}")
        return 3
