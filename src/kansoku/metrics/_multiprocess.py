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
- Values computed at scrape time by a collector (process, platform, GC, kansoku's own queues and
  errors) are per process, and a scrape reaches one worker: each worker copies them into its files
  once a second (`Mirror`, started with the runtime, and once more when it closes). Gauges get a
  `pid` label and go when the worker goes (`sum by (instance)` adds the workers up); counters are
  summed over the workers, the dead ones included, so totals never go down. The system collector
  (machine-wide) is read at scrape time.
"""

from __future__ import annotations

import glob
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

from kansoku._safety import suppress_internal_errors

__all__ = ["Mirror", "enabled", "mark_dead_workers", "prepare", "scrape_registry", "setup"]

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


Exemplars = Callable[[], Mapping[tuple[str, str, str], Exemplar]]
"""This worker's latency exemplars by (method, route, le) (`HttpMetrics.exemplars`)."""
_WITH_EXEMPLARS: Final = "http_request_duration_seconds"


def scrape_registry(directory: Path | str, *collectors: Any, exemplars: Exemplars | None = None) -> CollectorRegistry:
    """A registry that sums every worker's files, plus `collectors` (the system collector).

    `exemplars`: added to the summed latency buckets (the files keep none).
    """
    registry = CollectorRegistry()
    summed = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(summed if exemplars is None else _WithExemplars(summed, exemplars))
    for collector in collectors:
        registry.register(collector)
    return registry


class _WithExemplars(Collector):
    """The summed families, this worker's exemplars on the latency buckets."""

    def __init__(self, summed: Collector, exemplars: Exemplars) -> None:
        self.summed = summed
        self.exemplars = exemplars

    def collect(self) -> Iterable[Metric]:
        """Collect the files; attach an exemplar to each bucket this worker has one for."""
        kept = self.exemplars()
        for family in self.summed.collect():
            if family.name == _WITH_EXEMPLARS and kept:
                family.samples = [_with_exemplar(sample, kept) for sample in family.samples]
            yield family


def _with_exemplar(sample: Sample, kept: Mapping[tuple[str, str, str], Exemplar]) -> Sample:
    if not sample.name.endswith("_bucket"):
        return sample
    labels = sample.labels
    exemplar = kept.get((labels.get("method", ""), labels.get("route", ""), labels.get("le", "")))
    return sample if exemplar is None else sample._replace(exemplar=exemplar)


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


class Mirror:
    """Copies per-process collectors' values into this worker's multi-process files.

    Counter families become counters (increased by what changed since the last copy), gauge
    families `liveall` gauges (a `pid` label each); other types are left out. The metric objects
    are registered nowhere: they only write to the files that every worker's scrape adds up.
    """

    def __init__(self, collectors: Iterable[Collector], *, interval: float = 1.0) -> None:
        self.collectors = list(collectors)
        self.interval = interval
        self._metrics: dict[tuple[str, str, tuple[str, ...]], Any] = {}
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._lock = threading.Lock()
        self._thread: tuple[int, threading.Thread] | None = None
        self._stop = threading.Event()

    @classmethod
    def of_registry(cls, registry: CollectorRegistry, *, skip: Iterable[type] = (), interval: float = 1.0) -> Mirror:
        """A mirror of `registry`'s collectors that are not prometheus_client metrics (those write the files)."""
        kinds = tuple(skip)
        # prometheus_client has no public listing of a registry's collectors.
        found = list(registry._collector_to_names)
        return cls([c for c in found if not isinstance(c, (MetricWrapperBase, *kinds))], interval=interval)

    def publish(self) -> None:
        """Copy every collector's current values (one collector failing does not stop the others)."""
        with self._lock:
            for collector in self.collectors:
                with suppress_internal_errors("metrics.mirror"):
                    for family in collector.collect():
                        self._copy(family)

    def _copy(self, family: Any) -> None:
        if family.type not in ("counter", "gauge"):
            return
        wanted = family.name + "_total" if family.type == "counter" else family.name
        for sample in family.samples:
            if sample.name != wanted:
                continue  # a counter's _created
            names = tuple(sorted(sample.labels))
            key = (family.type, family.name, names)
            metric = self._metrics.get(key)
            if metric is None:
                metric = self._metrics[key] = _unregistered(family.type, family.name, family.documentation, names)
            child = metric.labels(*(sample.labels[n] for n in names)) if names else metric
            if family.type == "gauge":
                child.set(sample.value)
                continue
            seen = (family.name, tuple(sample.labels[n] for n in names))
            delta = sample.value - self._last.get(seen, 0.0)
            self._last[seen] = sample.value
            if delta > 0:
                child.inc(delta)

    def start(self) -> None:
        """Publish now, then every `interval` seconds in a daemon thread (again after a fork)."""
        self.publish()
        if self._thread is not None and self._thread[0] == os.getpid() and self._thread[1].is_alive():
            return
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="kansoku-metrics-mirror", daemon=True)
        self._thread = (os.getpid(), thread)
        thread.start()

    def stop(self) -> None:
        """Stop the thread, publishing a last time (counters end complete)."""
        self._stop.set()
        self.publish()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()


def _unregistered(kind: str, name: str, documentation: str, labels: tuple[str, ...]) -> Any:
    if kind == "counter":
        return Counter(name, documentation, labels, registry=None)
    return Gauge(name, documentation, labels, registry=None, multiprocess_mode="liveall")
