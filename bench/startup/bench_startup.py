"""Time to the first served request, and the memory a worker holds then, through uvicorn.

For each configuration of bench/http/apps.py, a fresh `python -m uvicorn bench.http.apps:create
--factory` is started and `GET /items/42` is sent every millisecond until one answers 200. The
figures at that moment: the wall time since the process was spawned, the CPU time the process
used (user + system; steadier than wall time on a loaded machine), and its RSS. The
configurations run in turn, several rounds; the figures are medians over the rounds.

`kansoku-full` is `kansoku.instrument(app)` over a SQLite store that is up to date (migrated once
before the rounds, as `kansoku db upgrade` or a first start leaves it); `kansoku-full-new-store`
starts on an empty directory each time, so it pays for creating the schema.

Python writes bytecode caches for every contender (one unmeasured start each first), as a deployed
service has them; PYTHONDONTWRITEBYTECODE is dropped from the children's environment.

    python bench/startup/bench_startup.py [--rounds 7] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIGS = ("bare", "kansoku", "kansoku-full", "kansoku-full-new-store", "peers")
REQUEST = b"GET /items/42 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether a GET /items/42 on `port` answers 200 now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(REQUEST)
            return conn.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_once(config: str, store: str) -> dict[str, float]:
    """Start one server of `config`; the figures at its first 200."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(BENCH_CONFIG=config.removesuffix("-new-store"), PYTHONPATH=str(ROOT))
    directory = None
    if config == "kansoku-full-new-store":
        directory = tempfile.mkdtemp(prefix="kansoku-bench-")
        env["BENCH_DATABASE_URL"] = f"sqlite:///{directory}/kansoku.db"
    elif config == "kansoku-full":
        env["BENCH_DATABASE_URL"] = store
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.http.apps:create", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process = psutil.Process(server.pid)
        deadline = started + 60
        while not _answers(port):
            if server.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit(f"{config} did not start:\n{server.communicate()[1].decode()}")
            time.sleep(0.001)
        wall = time.perf_counter() - started
        cpu = process.cpu_times()
        rss = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(timeout=20)
    return {"wall_ms": wall * 1000, "cpu_ms": (cpu.user + cpu.system) * 1000, "rss_mb": rss / 2**20}


def report(results: dict[str, list[dict[str, float]]]) -> str:
    median = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
              for name, runs in results.items()}
    bare = median["bare"]
    lines = ["| configuration | first request, ms | added ms | CPU ms | added CPU ms | RSS MB | added MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in median.items():
        lines.append(f"| {name} | {m['wall_ms']:.0f} | {m['wall_ms'] - bare['wall_ms']:+.0f} | {m['cpu_ms']:.0f} | "
                     f"{m['cpu_ms'] - bare['cpu_ms']:+.0f} | {m['rss_mb']:.1f} | {m['rss_mb'] - bare['rss_mb']:+.1f} |")
    if "kansoku-full" in median:
        added = median["kansoku-full"]["wall_ms"] - bare["wall_ms"]
        lines.append(f"\nkansoku-full: first request at bare {added:+.0f} ms (target <= +150 ms)")
    if "kansoku-full" in median and "peers" in median:
        ours, theirs = (median[name]["rss_mb"] - bare["rss_mb"] for name in ("kansoku-full", "peers"))
        lines.append(f"kansoku-full adds {ours:.1f} MB RSS at start, the peer stack {theirs:.1f} MB "
                     f"({ours / theirs:.2f} of it; target <= 0.50)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    configs = args.configs if "bare" in args.configs else ["bare", *args.configs]
    sys.path.insert(0, str(ROOT / "src"))
    from kansoku.store import migrations

    with tempfile.TemporaryDirectory(prefix="kansoku-bench-") as tmp:
        store = f"sqlite:///{tmp}/kansoku.db"
        migrations.upgrade(store)
        for config in configs:  # bytecode caches, and the store's first start
            start_once(config, store)
        results: dict[str, list[dict[str, float]]] = {config: [] for config in configs}
        for _ in range(args.rounds):
            for config in configs:
                results[config].append(start_once(config, store))
                last = results[config][-1]
                print(f"  {config:26s} {last['wall_ms']:7.0f} ms {last['cpu_ms']:7.0f} ms CPU "
                      f"{last['rss_mb']:6.1f} MB", file=sys.stderr, flush=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians of {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(report(results))


if __name__ == "__main__":
    main()
