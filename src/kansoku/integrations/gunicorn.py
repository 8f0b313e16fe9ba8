"""Gunicorn server hooks for kansoku: multi-process metrics that add up across workers.

A gunicorn configuration module: use it as it is, or import its hooks into your own
`gunicorn.conf.py`::

    gunicorn -c python:kansoku.integrations.gunicorn -w 4 mysite.wsgi:application

    # gunicorn.conf.py
    from kansoku.integrations.gunicorn import child_exit, on_exit, on_starting

- `on_starting` (in the master, before any worker): with more than one worker, switch
  prometheus_client's multi-process mode on for the workers (they inherit the directory through
  `PROMETHEUS_MULTIPROC_DIR`): the configured directory (`KANSOKU_MULTIPROCESS_DIR` or
  `PROMETHEUS_MULTIPROC_DIR`) emptied of a previous run's files, or a new temporary one.
- `child_exit`: a worker that exited no longer counts in the live gauges (requests in progress);
  its counters and histograms stay in the sums, so totals never go down.
- `on_exit`: the temporary directory is removed.

With `--preload`, the app (and kansoku's metrics) are made in the master before `on_starting`
runs: set `PROMETHEUS_MULTIPROC_DIR` to an empty directory yourself then. `kansoku run
module:app --workers N` serves WSGI apps with gunicorn and these hooks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from kansoku.metrics import _multiprocess

__all__ = ["child_exit", "on_exit", "on_starting"]

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_MADE = "_KANSOKU_GUNICORN_METRICS_DIR"  # the directory on_starting made, for on_exit to remove


def on_starting(server: Any) -> None:
    """Give the workers an empty multi-process metrics directory (more than one worker)."""
    configured = os.environ.get("KANSOKU_MULTIPROCESS_DIR") or os.environ.get(_ENV)
    if not configured and server.cfg.workers <= 1:
        return
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="kansoku-metrics-"))
    _multiprocess.prepare(path)
    os.environ[_ENV] = str(path.resolve())
    if not configured:
        os.environ[_MADE] = str(path)


def child_exit(server: Any, worker: Any) -> None:
    """Forget the live gauges of the worker that exited."""
    directory = os.environ.get(_ENV)
    if directory:
        mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the temporary metrics directory `on_starting` made."""
    made = os.environ.pop(_MADE, None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
