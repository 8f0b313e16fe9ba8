"""prometheus_client's multi-process mode, for `uvicorn --workers N`, gunicorn and `kansoku run --workers`.

Each worker writes its metric values to memory-mapped files in one shared directory
(`Settings.multiprocess_dir`, also read from `PROMETHEUS_MULTIPROC_DIR`); a scrape, answered by
whichever worker gets it, sums the files of all workers. Rules:

- The directory must be empty when the server starts (`prepare()`; `kansoku run` calls it): files
  of a previous run would be added in.
- Counters and histograms of a worker that died stay in the sums (totals must never go down);
  its live gauges (`livesum`/`liveall`, such as requests in progress) are removed. Gunicorn: its
  hooks are in `kansoku.integrations.gunicorn` (`child_exit`). Uvicorn has no such hook, so
  every scrape removes the live gauges of workers that no longer exist (`mark_dead_workers()`).
- Values computed at scrape time by a collector (process, platform, GC, kansoku's own queues) are
  per process and are not exported in this mode; the system collector (machine-wide) is.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["enabled", "mark_dead_workers", "prepare", "scrape_registry", "setup"]

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live(?:sum|all|max|min|mostrecent)_(\d+)\.db\Z")


def setup(directory: Path | str) -> None:
    """Switch prometheus_client to multi-process mode with `directory`; idempotent.

    Must run before the metrics are made (`make_registry()` runs it first). prometheus_client
    chooses its value class when imported, from the environment, and finds the directory there
    when it opens a file; so both are set here.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[_ENV] = str(path)  # read by prometheus_client itself, in this process and children
    if not enabled():
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def enabled() -> bool:
    """Whether prometheus_client writes metric values to the multi-process directory."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def prepare(directory: Path | str) -> None:
    """Create the directory, or empty it of a previous run's files (call before the workers start)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)


def scrape_registry(directory: Path | str, *collectors: Any) -> CollectorRegistry:
    """A registry that sums every worker's files, plus `collectors` (the system collector)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    return registry


def mark_dead_workers(directory: Path | str) -> list[int]:
    """Remove the live-gauge files of processes that no longer exist; returns their pids."""
    dead = []
    for file in glob.glob(os.path.join(str(directory), "gauge_live*.db")):
        match = _LIVE_FILE.search(os.path.basename(file))
        if match is not None and not _alive(int(match.group(1))):
            dead.append(int(match.group(1)))
    for pid in sorted(set(dead)):
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return sorted(set(dead))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
