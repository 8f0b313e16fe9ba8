"""The worker's app module, `celery -A kansoku_celery_worker worker`: the tasks' app, instrumented."""

from __future__ import annotations

from kansoku_celery_tasks import app

import kansoku

kansoku.instrument_celery(app)

__all__ = ["app"]
