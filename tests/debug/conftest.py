"""Fixtures of the debugging tests: a fresh default debugger and unconfigured tracing around each test."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kansoku import debug, logs, tracing
from kansoku.settings import load_settings

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _fresh_debugger() -> Iterator[None]:
    """Each test gets a new default debugger and leaves none behind."""
    tracing.reset()
    yield
    tracing.reset()


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """JSON logging into a buffer at DEBUG; returns a reader of the lines written so far."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="json", log_level="DEBUG", stdlib_logging=False),
                           stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A settable clock starting at a fixed time."""
    return Clock()


@pytest.fixture
def debugger(clock: Clock) -> Iterator[debug.Debugger]:
    """A debugger on the test clock, installed as the current one and closed afterwards."""
    made = debug.Debugger(clock=clock)
    debug.use(made)
    yield made
    made.close()
