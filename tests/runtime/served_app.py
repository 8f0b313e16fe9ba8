"""A tiny app served by real uvicorn processes in the tests (one worker or several).

Settings come from the environment, as in production: with PROMETHEUS_MULTIPROC_DIR set, the
metrics are in multi-process mode. The runtime is made of the metrics parts only (no store).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from kansoku.metrics import make_registry
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.settings import load_settings
from kansoku.testing import MetricsRuntime


class ServedRuntime(MetricsRuntime):
    """What the middleware needs of a runtime, from the real metrics parts; event ids name the worker."""

    def __init__(self) -> None:
        settings = load_settings()
        super().__init__(settings, make_registry(settings))

    def capture_exception(self, exc: BaseException, **kwargs: Any) -> str:
        return f"served-{os.getpid()}"


app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id, "pid": os.getpid()}


@app.get("/boom")
async def boom() -> None:
    raise ValueError("served failure")


app.add_middleware(KansokuMiddleware, runtime=ServedRuntime())
