"""A tiny app served by real uvicorn processes in the tests (one worker or several).

Settings come from the environment, as in production: with PROMETHEUS_MULTIPROC_DIR set, the
metrics are in multi-process mode. The runtime is made of the metrics parts only (no store).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from kansoku.health import Readiness
from kansoku.metrics import HttpMetrics, RequestStats, make_registry
from kansoku.settings import load_settings
from kansoku.web.middleware import KansokuMiddleware


class ServedRuntime:
    """What the middleware needs of a runtime, from the real metrics parts."""

    def __init__(self) -> None:
        self.settings = load_settings()
        self.registry = make_registry(self.settings)
        self.request_stats = RequestStats(self.settings.service, self.settings.latency_buckets)
        self.http_metrics = HttpMetrics(self.registry, self.settings, stats=self.request_stats)
        self.readiness = Readiness()
        self.request_tracer = None
        self.web_app = None

    def capture_exception(self, exc: BaseException, **kwargs: Any) -> str:
        return f"served-{os.getpid()}"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id, "pid": os.getpid()}


@app.get("/boom")
async def boom() -> None:
    raise ValueError("served failure")


app.add_middleware(KansokuMiddleware, runtime=ServedRuntime())
