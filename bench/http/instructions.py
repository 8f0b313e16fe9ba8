"""The in-process request path of bench_http.py in callgrind instructions per request.

Each configuration runs `bench_http.py --one CONFIG --rounds 1 --requests N` under callgrind for
two values of N (bench/callgrind.py); the difference per extra request is the request's cost, with
imports and start-up cancelled out. The main thread's count is the request path; the other
threads' count is the background work the requests caused (span export, log and statistics
writers). Time-based budgets (the span store's 50 traces/s) admit more per request under
callgrind's slowdown than at full speed, so read the other threads' count as an upper bound.

    python bench/http/instructions.py [CONFIG ...]   # default: bare floor kansoku floor-span kansoku-full
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from bench.callgrind import per_request  # noqa: E402

DEFAULT = ("bare", "floor", "kansoku", "floor-span", "kansoku-full")
SMALL, LARGE = 500, 1500  # both past bench_http's warm-up of 500 requests


def argv_of(config: str) -> list[str]:
    """The command line of one measured process, without its request count."""
    return [sys.executable, str(HERE / "bench_http.py"), "--one", config, "--rounds", "1", "--out", "/dev/null",
            "--requests"]


def main() -> None:
    configs = sys.argv[1:] or list(DEFAULT)
    rows = {}
    for config in configs:
        rows[config] = per_request(lambda n, config=config: [*argv_of(config), str(n)], SMALL, LARGE)
        print(f"  {config:28s} {rows[config][0] / 1000:8.1f} k on the request thread, "
              f"{rows[config][1] / 1000:8.1f} k in other threads", file=sys.stderr, flush=True)
    print("| configuration | k instructions/request, request thread | other threads | total |\n|---|---:|---:|---:|")
    for config, (main_thread, others) in rows.items():
        print(f"| {config} | {main_thread / 1000:.1f} | {others / 1000:.1f} | {(main_thread + others) / 1000:.1f} |")


if __name__ == "__main__":
    main()
