"""Machine and process metrics, computed when Prometheus scrapes (no polling thread).

prometheus_client's own collectors give the process (CPU seconds, memory, open and max fds, start
time), the platform (`python_info`) and the garbage collector. `SystemCollector` adds what they do
not, from psutil: CPU time by mode and load, memory and swap, disk space per real mount point,
network I/O per interface, and the process's thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Final

import psutil
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kansoku._safety import suppress_internal_errors

__all__ = ["SystemCollector", "register_runtime_collectors"]

# File systems that hold no user data (and the overlay of a container's image layers is still a
# real disk, so it stays); a bind mount of a device already seen is skipped too.
_PSEUDO_FS: Final = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
    "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs",
    "squashfs", "sysfs", "tmpfs", "tracefs",
})
_MAX_SERIES: Final = 64  # mount points and interfaces reported at most (bounded label values)


class SystemCollector(Collector):
    """CPU, memory, disks, network and threads from psutil, read at each scrape."""

    def __init__(self, *, process_fds: bool = False, machine: bool = True, process: bool = True) -> None:
        # prometheus_client's process collector reports open fds where /proc exists; elsewhere
        # (macOS) this collector does, so the metric is always there.
        self._process_fds = process_fds
        # Multi-process mode: the machine is read at scrape time, each worker's process part is
        # copied into the shared files (`_multiprocess.Mirror`).
        machine_parts = (self._cpu, self._memory, self._disks, self._network) if machine else ()
        self._parts = (*machine_parts, self._process) if process else machine_parts

    def describe(self) -> Iterable[Metric]:
        """No up-front description: the families depend on the machine (collected on demand)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """One family per resource; a resource that cannot be read is left out."""
        for part in self._parts:
            with suppress_internal_errors(f"system-metrics.{part.__name__.strip('_')}"):
                yield from part()

    def _cpu(self) -> Iterator[Metric]:
        seconds = CounterMetricFamily("system_cpu_seconds", "CPU time of the machine, by mode.",
                                      labels=["mode"])
        for mode, value in psutil.cpu_times()._asdict().items():
            seconds.add_metric([mode], value)
        yield seconds
        yield GaugeMetricFamily("system_cpu_logical_cores", "Logical CPUs of the machine.",
                                value=psutil.cpu_count() or 0)
        busy = psutil.cpu_percent(interval=None) / 100.0
        yield GaugeMetricFamily("system_cpu_usage_ratio",
                                "Machine CPU busy share since the previous scrape (0-1).", value=busy)
        load = GaugeMetricFamily("system_load_average", "Run-queue length averaged over a window.",
                                 labels=["window"])
        for window, value in zip(("1m", "5m", "15m"), psutil.getloadavg(), strict=True):
            load.add_metric([window], value)
        yield load

    def _memory(self) -> Iterator[Metric]:
        memory = psutil.virtual_memory()
        family = GaugeMetricFamily("system_memory_bytes", "Machine memory, by state.", labels=["state"])
        for state in ("total", "available", "used", "free"):
            family.add_metric([state], getattr(memory, state))
        yield family
        swap = psutil.swap_memory()
        family = GaugeMetricFamily("system_swap_bytes", "Machine swap space, by state.", labels=["state"])
        for state in ("total", "used", "free"):
            family.add_metric([state], getattr(swap, state))
        yield family

    def _disks(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("system_disk_bytes", "Disk space per mount point, by state.",
                                   labels=["mountpoint", "state"])
        for mountpoint in real_mountpoints()[:_MAX_SERIES]:
            try:
                usage = psutil.disk_usage(mountpoint)
            except OSError:  # unmounted meanwhile, or not ours to read
                continue
            for state in ("total", "used", "free"):
                family.add_metric([mountpoint, state], getattr(usage, state))
        yield family

    def _network(self) -> Iterator[Metric]:
        sent = CounterMetricFamily("system_network_transmit_bytes", "Bytes sent, per interface.",
                                   labels=["interface"])
        received = CounterMetricFamily("system_network_receive_bytes", "Bytes received, per interface.",
                                       labels=["interface"])
        counters = sorted(psutil.net_io_counters(pernic=True).items())
        for interface, io in [item for item in counters if item[0] != "lo"][:_MAX_SERIES]:
            sent.add_metric([interface], io.bytes_sent)
            received.add_metric([interface], io.bytes_recv)
        yield sent
        yield received

    def _process(self) -> Iterator[Metric]:
        process = psutil.Process()
        yield GaugeMetricFamily("process_threads", "Threads of this process.", value=process.num_threads())
        if self._process_fds and hasattr(process, "num_fds"):
            yield GaugeMetricFamily("process_open_fds", "Open file descriptors.", value=process.num_fds())


def real_mountpoints() -> list[str]:
    """Mount points of real file systems, one per device (the shortest path wins), sorted."""
    by_device: dict[str, str] = {}
    for partition in psutil.disk_partitions(all=False):
        if partition.fstype in _PSEUDO_FS:
            continue
        known = by_device.get(partition.device)
        if known is None or len(partition.mountpoint) < len(known):
            by_device[partition.device] = partition.mountpoint
    return sorted(by_device.values())


def register_runtime_collectors(registry: CollectorRegistry) -> list[Any]:
    """Register the process, platform, GC and system collectors into `registry`; return them."""
    has_proc = os.path.exists("/proc/self/stat")
    collectors: list[Any] = [
        ProcessCollector(registry=registry),
        PlatformCollector(registry=registry),
        GCCollector(registry=registry),
    ]
    system = SystemCollector(process_fds=not has_proc)
    registry.register(system)
    return [*collectors, system]
