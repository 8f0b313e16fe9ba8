"""Run every benchmark in turn (`make bench`); each prints its own table with ratios.

    python bench/run_all.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("logging", ["logging/bench_logging.py"], ["--rounds", "3"]),
    ("http", ["http/bench_http.py"], ["--quick"]),
    ("wsgi", ["wsgi/bench_wsgi.py"], ["--quick"]),
    ("errors", ["errors/bench_errors.py"], []),
    ("startup", ["startup/bench_startup.py"], ["--rounds", "3"]),
    ("memory", ["memory/bench_memory.py"], ["--requests", "20000"]),
    ("alerts", ["alerts/bench_alerts.py"], []),
    ("dashboard", ["dashboard/bench_dashboard.py"], []),
    ("ingest", ["ingest/bench_ingest.py"], ["--requests", "40", "--events", "1000", "--no-postgres"]),
]


def main() -> int:
    quick = "--quick" in sys.argv
    failed = []
    for name, script, quick_args in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script[0]), *(quick_args if quick else [])], check=False)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
