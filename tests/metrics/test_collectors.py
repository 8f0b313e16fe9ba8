"""Scrape-time collectors (system, kansoku's own health), readiness checks, multi-process helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

from kansoku import _safety
from kansoku._worker import BackgroundWorker
from kansoku.metrics import make_registry
from kansoku.metrics._multiprocess import mark_dead_workers, prepare
from kansoku.metrics._self import SelfCollector
from kansoku.metrics._system import SystemCollector, real_mountpoints, register_runtime_collectors
from kansoku.runtime.endpoints import Readiness, queue_check
from kansoku.settings import load_settings


def _samples(collector: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in collector.collect() for s in family.samples}


def test_system_collector_reads_the_machine_at_scrape_time() -> None:
    """CPU, memory, disks, network and threads come from psutil when collected."""
    samples = _samples(SystemCollector())
    assert samples[("system_memory_bytes", (("state", "total"),))] == psutil.virtual_memory().total
    assert samples[("system_cpu_logical_cores", ())] == psutil.cpu_count()
    assert ("system_cpu_seconds_total", (("mode", "user"),)) in samples
    assert samples[("process_threads", ())] >= 1
    for mountpoint in real_mountpoints():
        assert samples[("system_disk_bytes", (("mountpoint", mountpoint), ("state", "total")))] > 0
    interfaces = {dict(labels)["interface"] for name, labels in samples
                  if name == "system_network_receive_bytes_total"}
    assert "lo" not in interfaces


def test_real_mountpoints_skip_pseudo_filesystems() -> None:
    """Only real file systems, one mount point per device."""
    mounts = real_mountpoints()
    assert mounts and len(mounts) == len(set(mounts))
    pseudo = {part.mountpoint for part in psutil.disk_partitions(all=True)
              if part.fstype in ("proc", "sysfs", "tmpfs")}
    assert not pseudo & set(mounts)


def test_open_fds_from_the_system_collector_only_where_needed() -> None:
    """process_open_fds comes from prometheus_client on Linux; the psutil collector adds it elsewhere."""
    assert ("process_open_fds", ()) not in _samples(SystemCollector())
    assert _samples(SystemCollector(process_fds=True))[("process_open_fds", ())] >= 3


def test_runtime_collectors_register_without_clashes() -> None:
    """Process, platform, GC and system collectors all fit in one registry."""
    registry = CollectorRegistry()
    assert len(register_runtime_collectors(registry)) == 4
    assert registry.get_sample_value("process_open_fds") is not None
    assert any(s.name == "python_info" for f in registry.collect() for s in f.samples)


def _blocked_worker(name: str, maxsize: int) -> tuple[BackgroundWorker, threading.Event]:
    """A real worker whose thread is stuck on a gate, so that what is submitted next stays queued."""
    gate, taken = threading.Event(), threading.Event()
    worker = BackgroundWorker(name, maxsize=maxsize)
    worker.submit(lambda: (taken.set(), gate.wait(30)))
    assert taken.wait(30)
    return worker, gate


def test_self_collector_reports_queues_drops_and_internal_errors() -> None:
    """kansoku's own health: queue depth and capacity, dropped items, internal errors by place."""
    worker, gate = _blocked_worker("selftest-queue", maxsize=2)
    assert [worker.submit(lambda: None) for _ in range(3)] == [True, True, False]
    _safety.set_strict(False)
    try:
        _safety.report_internal_error("selftest.where", RuntimeError("x"))
    finally:
        _safety.set_strict(True)
    samples = _samples(SelfCollector())
    assert samples[("kansoku_queue_depth", (("queue", "selftest-queue"),))] == 2.0
    assert samples[("kansoku_queue_capacity", (("queue", "selftest-queue"),))] == 2.0
    assert samples[("kansoku_dropped_events_total", (("queue", "selftest-queue"),))] == 1.0
    assert samples[("kansoku_internal_errors_total", (("where", "selftest.where"),))] >= 1.0
    gate.set()
    assert worker.close(30)


def test_make_registry_has_the_collectors() -> None:
    """The runtime's registry comes with process, system and kansoku-health metrics."""
    registry = make_registry(load_settings())
    names = {family.name for family in registry.collect()}
    assert {"process_cpu_seconds", "system_memory_bytes", "kansoku_internal_errors",
            "python_gc_objects_collected"} <= names


def test_readiness_runs_every_check() -> None:
    """results() maps each check to None (ok) or its problem; a raising check fails with its error."""
    readiness = Readiness()
    readiness.register("ok", lambda: None)
    readiness.register("store", lambda: "connection refused")

    def broken() -> str | None:
        raise TimeoutError("slow")

    readiness.register("broken", broken)
    assert readiness.results() == {"ok": None, "store": "connection refused",
                                   "broken": "check raised TimeoutError: slow"}


def test_queue_check_fails_when_saturated() -> None:
    """A queue at 90% of its bound is not ready."""
    worker, gate = _blocked_worker("ready-queue", maxsize=10)
    check = queue_check(worker)
    assert check() is None
    for _ in range(9):
        worker.submit(lambda: None)
    assert check() == "queue 'ready-queue' saturated (9/10)"
    gate.set()
    assert worker.close(30)


def test_mark_dead_workers_removes_live_gauges_of_gone_processes(tmp_path: Path) -> None:
    """Live-gauge files of exited processes go; counters of exited processes and live ones stay."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = int(gone.stdout)
    names = [f"gauge_livesum_{dead}.db", f"gauge_liveall_{dead}.db", f"counter_{dead}.db",
             f"gauge_livesum_{os.getpid()}.db", f"histogram_{os.getpid()}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert mark_dead_workers(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_prepare_empties_the_directory(tmp_path: Path) -> None:
    """prepare() creates the directory or removes a previous run's files."""
    directory = tmp_path / "prom"
    prepare(directory)
    (directory / "counter_1.db").write_bytes(b"")
    (directory / "notes.txt").write_text("kept")
    prepare(directory)
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]


def test_in_progress_publishes_to_a_shared_gauge() -> None:
    """Multi-process mode: live counts are written to a livesum gauge; routes that emptied go to 0."""
    from kansoku.metrics._http import InProgress

    registry = CollectorRegistry()
    progress = InProgress(lambda route: route, registry, multiprocess=True, interval=0)
    first, second = _Live("GET", "/a"), _Live("POST", "/b")
    progress.track(first)
    progress.track(second)
    progress.publish()
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET", "route": "/a"}) == 1.0
    progress.untrack(first)
    progress.publish()
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET", "route": "/a"}) == 0.0
    assert registry.get_sample_value("http_requests_in_progress", {"method": "POST", "route": "/b"}) == 1.0


class _Live:
    """A request in progress, as the middlewares hand it to InProgress."""

    def __init__(self, method: str, route: str) -> None:
        self.method, self.route = method, route

    def live_route(self) -> str:
        return self.route


_MIRRORED_WORKER = """
import sys
from prometheus_client import CollectorRegistry
from kansoku import _safety
from kansoku._worker import BackgroundWorker
from kansoku.metrics import _multiprocess
from kansoku.metrics._self import SelfCollector

_multiprocess.setup(sys.argv[1])
registry = CollectorRegistry()
registry.register(SelfCollector())
queue = BackgroundWorker("mirrored", maxsize=7)
mirror = _multiprocess.Mirror.of_registry(registry, interval=0)
mirror.publish()
_safety.report_internal_error("mirror-test", ValueError("x"))
_safety.report_internal_error("mirror-test", ValueError("x"))
mirror.publish()
mirror.publish()  # a counter copied again adds nothing
"""


def test_mirror_copies_per_process_collectors_into_the_shared_files(tmp_path: Path) -> None:
    """A worker's queue gauges (pid label) and error counters reach a scrape of the multi-process files."""
    from kansoku.metrics._multiprocess import scrape_registry

    worker = subprocess.run([sys.executable, "-c", _MIRRORED_WORKER, str(tmp_path)], capture_output=True,
                            text=True, check=False)
    assert worker.returncode == 0, worker.stderr
    samples = _samples(scrape_registry(tmp_path))
    [pid] = {dict(labels)["pid"] for name, labels in samples if name == "kansoku_queue_capacity"}
    assert samples[("kansoku_queue_capacity", (("pid", pid), ("queue", "mirrored")))] == 7.0
    assert samples[("kansoku_queue_depth", (("pid", pid), ("queue", "mirrored")))] == 0.0
    assert samples[("kansoku_internal_errors_total", (("where", "mirror-test"),))] == 2.0
    assert samples[("kansoku_internal_errors_total", (("where", "worker:mirrored"),))] == 0.0


def test_scrape_adds_this_workers_exemplars_to_the_summed_buckets(tmp_path: Path) -> None:
    """The files keep no exemplars: the scraping worker's own ones are put on the summed buckets."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
    from prometheus_client.samples import Exemplar

    from kansoku.metrics._multiprocess import scrape_registry

    script = ("import sys\nfrom prometheus_client import Histogram\nfrom kansoku.metrics import _multiprocess\n"
              "_multiprocess.setup(sys.argv[1])\n"
              "Histogram('http_request_duration_seconds', 'd', ('method', 'route'), buckets=(0.1, 1.0),"
              " registry=None).labels('GET', '/a').observe(0.05)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    kept = {("GET", "/a", "0.1"): Exemplar({"trace_id": "ab" * 16}, 0.05, 1_800_000_000.0)}
    registry = scrape_registry(tmp_path, exemplars=lambda: kept)
    text = openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    assert ('http_request_duration_seconds_bucket{le="0.1",method="GET",route="/a"} 1.0 # '
            f'{{trace_id="{"ab" * 16}"}} 0.05 1800000000.0') in text
    assert b"# {" not in generate_latest(registry)  # the Prometheus text format has no exemplars


def test_destinations_health_is_exported() -> None:
    """A Link (Sentry, say) is kansoku_export_up 0 while down and counts what it could not send."""
    from kansoku._outage import Link
    from kansoku.testing import capture_logs

    with capture_logs():
        link = Link("probe-target", _safety_log())
        link.failed("ConnectionRefusedError", lost=3)
    samples = _samples(SelfCollector())
    assert samples[("kansoku_export_up", (("target", "probe-target"),))] == 0.0
    assert samples[("kansoku_export_lost_total", (("target", "probe-target"),))] == 3.0
    with capture_logs():
        link.succeeded()
    assert _samples(SelfCollector())[("kansoku_export_up", (("target", "probe-target"),))] == 1.0


def _safety_log() -> Any:
    from kansoku.logs import get_logger

    return get_logger("kansoku.test")
