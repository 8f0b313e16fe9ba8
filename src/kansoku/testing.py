"""Seams for testing code that uses kansoku (and kansoku itself), shipped with the package.

- `capture_logs()`: the event dicts your code logs, after redaction, instead of output lines.
- `isolated_runtime(tmp_path, **settings)`: a runtime on a throwaway SQLite store, strict mode on,
  closed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from kansoku import _runtime, logs
from kansoku.typing import EventDict

__all__ = ["capture_logs", "isolated_runtime"]


@contextmanager
def capture_logs() -> Iterator[list[EventDict]]:
    """Collect every record written through kansoku's pipeline (redacted), writing nothing."""
    captured: list[EventDict] = []

    def collect(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    processors, hooks = logs._STATE.processors, logs._STATE.hooks
    saved, saved_hooks = list(processors), list(hooks)
    processors[:] = [*saved[:-1], collect]  # everything but the renderer
    try:
        yield captured
    finally:
        processors[:], hooks[:] = saved, saved_hooks


@contextmanager
def isolated_runtime(directory: Path, **overrides: Any) -> Iterator[_runtime.Runtime]:
    """A runtime on a SQLite store inside `directory`, strict, made current for the block."""
    overrides.setdefault("database_url", f"sqlite:///{directory / 'kansoku.db'}")
    overrides.setdefault("strict", True)
    overrides.setdefault("log_format", "json")
    runtime = _runtime.setup(**overrides)
    try:
        yield runtime
    finally:
        _runtime.shutdown(5.0)
