"""Instructions per request under callgrind: a repeatable measure on a loaded machine.

Wall-clock time on a shared machine moves with everyone else's work; the number of instructions
a request executes does not. For each configuration, this runs `bench_wsgi.py --count N` under
`valgrind --tool=callgrind` for two values of N and takes the difference, so start-up and import
cost cancel out: instructions per request, and the added instructions against bare Flask.

    python bench/wsgi/instructions.py [CONFIG ...]     # default: every configuration
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from bench import callgrind  # noqa: E402
from bench.wsgi.apps import CONFIGS  # noqa: E402

SMALL, LARGE = 200, 1200


def instructions(config: str, requests: int) -> int:
    """Instructions of one process serving `requests` requests (after a fixed warm-up) of `config`."""
    argv = [sys.executable, str(HERE / "bench_wsgi.py"), "--count", str(requests), config]
    main_thread, others = callgrind.count(argv)
    return main_thread + others


def main() -> None:
    configs = sys.argv[1:] or list(CONFIGS)
    if "bare" not in configs:
        configs.insert(0, "bare")
    per_request = {}
    for config in configs:
        per_request[config] = (instructions(config, LARGE) - instructions(config, SMALL)) / (LARGE - SMALL)
        print(f"  {config:28s} {per_request[config] / 1000:9.1f} k instructions/request", file=sys.stderr,
              flush=True)
    bare = per_request["bare"]
    print("| configuration | k instructions/request | added k | added / bare |\n|---|---:|---:|---:|")
    for config, count in per_request.items():
        print(f"| {config} | {count / 1000:.1f} | {(count - bare) / 1000:+.1f} | {(count - bare) / bare:+.2f}x |")


if __name__ == "__main__":
    main()
