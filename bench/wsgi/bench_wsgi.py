"""What the WSGI request path costs: kansoku against bare Flask and the Flask peer stack.

One run measures, each configuration in its own process (see apps.py):

1. In-process WSGI cost per request: the app called directly with a prepared environ, its body
   iterated and closed as a server does; the fastest of many rounds of the mean µs per request,
   and the added cost against bare Flask.
2. Through gunicorn (one sync worker) with wrk: requests per second and the share of bare kept. On
   a machine with two or more CPUs gunicorn is pinned to CPU 0 and `wrk -t1` to CPU 1 (taskset);
   the configurations run in turn, several passes, and each share is the median of its per-pass
   ratio to bare (measured in the same pass).

The targets (issue 15): kansoku's added cost at most prometheus-flask-exporter's alone, and at most
a tenth of the peer stack's (sentry-sdk's Flask integration + prometheus-flask-exporter +
OpenTelemetry's Flask instrumentation).

    python bench/wsgi/bench_wsgi.py            # full run
    python bench/wsgi/bench_wsgi.py --quick    # one pass, 2 s wrk runs
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # `bench.wsgi.apps` importable when run as a script

from bench.wsgi.apps import CONFIGS, build  # noqa: E402

ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/items/42", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0", "HTTP_ACCEPT": "*/*", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
    "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
}


def _caller(app: Any, statuses: list[str]) -> Any:
    """One request to `app` as a server makes it: environ, start_response, body iterated and closed."""

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    def one() -> None:
        environ = dict(ENVIRON)
        environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(), sys.stderr
        body = app(environ, start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return one


def _measure(app: Any, rounds: int, requests: int, *, warm_up: int = 500) -> dict[str, Any]:
    """The fastest of `rounds` rounds, in mean µs per request; every response checked to be a 200."""
    statuses: list[str] = []
    one = _caller(app, statuses)
    for _ in range(min(requests, warm_up)):  # warm up: caches, label children, lazy imports
        one()
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            one()
        per_round.append((time.perf_counter() - started) / requests * 1e6)
    bad = sorted({status for status in statuses if not status.startswith("200")})
    if bad:
        raise SystemExit(f"unexpected statuses {bad}")
    return {"best_us": min(per_round), "median_us": statistics.median(per_round)}


def in_process(quick: bool) -> dict[str, float]:
    """Each configuration in its own process, `passes` times interleaved; the fastest round wins."""
    passes, rounds, requests = (1, 8, 500) if quick else (3, 15, 1000)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(passes):
            for name in CONFIGS:
                path = Path(tmp) / f"{name}.json"
                out = subprocess.run([sys.executable, __file__, "--one", name, "--rounds", str(rounds),
                                      "--requests", str(requests), "--out", str(path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
                                     cwd=ROOT)
                if out.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{out.stderr}")
                best = json.loads(path.read_text())["best_us"]
                results[name] = min(results.get(name, best), best)
                print(f"  in-process {name:28s} {best:8.1f} µs", file=sys.stderr, flush=True)
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def _wrk(name: str, seconds: int) -> float:
    """Start gunicorn (one sync worker) with configuration `name`, run wrk against it, return req/s."""
    port = _free_port()
    env = {**os.environ, "BENCH_CONFIG": name, "PYTHONPATH": str(ROOT)}
    server_pin, wrk_cmd = (["taskset", "-c", "0"], ["taskset", "-c", "1", "wrk", "-t1"]) if _pinned() else (
        [], ["wrk", "-t2"])
    server = subprocess.Popen(
        [*server_pin, sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--no-control-socket",
         "--log-level", "warning", "bench.wsgi.apps:create()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/items/42"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    response.read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"gunicorn ({name}) did not start")
        out = subprocess.run([*wrk_cmd, "-c8", f"-d{seconds}s", url], capture_output=True, text=True,
                             check=True, timeout=seconds + 30)
        match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
        if match is None or "Non-2xx" in out.stdout:
            raise SystemExit(f"wrk ({name}) failed:\n{out.stdout}")
        return float(match.group(1))
    finally:
        server.terminate()
        server.wait(timeout=20)


def through_gunicorn(quick: bool) -> dict[str, tuple[float, float]]:
    """Per configuration: the median req/s over the passes, and the median of its per-pass ratio to bare."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    ratios: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(1 if quick else 3):
        for name in CONFIGS:
            rates[name].append(_wrk(name, 2 if quick else 4))
            ratios[name].append(rates[name][-1] / rates["bare"][-1])
            print(f"  wrk {name:28s} {rates[name][-1]:9.0f} req/s", file=sys.stderr, flush=True)
    return {name: (statistics.median(rates[name]), statistics.median(ratios[name])) for name in CONFIGS}


def report(inproc: dict[str, float], wrk: dict[str, tuple[float, float]]) -> str:
    """The two tables and the targets, as markdown."""
    bare = inproc["bare"]
    added = {name: micros - bare for name, micros in inproc.items()}
    lines = ["In-process WSGI cost per request (fastest round of all passes):", "",
             "| configuration | µs/request | added µs | added / bare |", "|---|---:|---:|---:|"]
    for name, micros in inproc.items():
        lines.append(f"| {name} | {micros:.1f} | {added[name]:+.1f} | {added[name] / bare:+.2f}x |")
    if wrk:
        setup = "gunicorn on CPU 0, wrk -t1 -c8 on CPU 1" if _pinned() else "wrk -t2 -c8"
        lines += ["", f"Through gunicorn (1 sync worker, {setup}; medians over the passes):", "",
                  "| configuration | req/s | share of bare | added time / bare's |", "|---|---:|---:|---:|"]
        for name, (rate, ratio) in wrk.items():
            lines.append(f"| {name} | {rate:.0f} | {ratio:.2f} | {1 / ratio - 1:+.2f}x |")
    lines.append("")
    for name in ("kansoku", "kansoku-full"):
        exporter, peers = added["prometheus-flask-exporter"], added["peers"]
        line = (f"{name}: in-process adds {added[name]:.1f} µs; prometheus-flask-exporter alone "
                f"{exporter:.1f} µs (ratio {added[name] / exporter:.2f}, target <= 1); the peer stack "
                f"{peers:.1f} µs (ratio {added[name] / peers:.2f}, target <= 0.10)")
        if wrk:
            cost = {n: 1 / wrk[n][1] - 1 for n in wrk}
            line += (f"; through gunicorn {cost[name] / cost['prometheus-flask-exporter']:.2f} of the exporter's "
                     f"added time and {cost[name] / cost['peers']:.2f} of the peer stack's")
        lines.append(line + ".")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one pass, fewer rounds and 2 s wrk runs")
    parser.add_argument("--skip-gunicorn", action="store_true", help="in-process part only")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=9, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=3000, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)  # instructions.py: N requests of one config
    parser.add_argument("config", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count is not None:
        _measure(build(args.config), 1, args.count, warm_up=0)
        return
    if args.one:
        result = _measure(build(args.one), args.rounds, args.requests)
        Path(args.out).write_text(json.dumps({"config": args.one, **result}))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", file=sys.stderr)
    inproc = in_process(args.quick)
    wrk = {} if args.skip_gunicorn else through_gunicorn(args.quick)
    print(report(inproc, wrk))


if __name__ == "__main__":
    main()
