"""Instructions under callgrind: the one helper the benches use for a measure that load does not move.

Wall-clock time on a shared machine moves with everyone else's work; the number of instructions a
process executes does not. `per_request(argv_of, small, large)` runs the command `argv_of(n)` under
`valgrind --tool=callgrind --separate-threads=yes` for two request counts and divides the
difference by the extra requests, so imports, start-up and warm-up cancel out. It returns the main
thread's instructions per request (the request path, in an in-process bench) apart from the other
threads' (the writer, exporter and log threads: work the process pays for, off the request path).
PYTHONHASHSEED is fixed at 0: string hashing otherwise moves the counts by about 2 % between runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count(argv: list[str], env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(main thread, other threads) instructions of one run of `argv` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                        *argv], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})
        main, others = 0, 0
        for path in sorted(Path(tmp).glob("callgrind.out*")):
            match = re.search(r"^summary:\s+(\d+)", path.read_text(errors="replace"), re.MULTILINE)
            found = int(match.group(1)) if match else 0
            if path.name.endswith("-01"):
                main += found
            else:
                others += found
        return main, others


def per_request(argv_of: Callable[[int], list[str]], small: int, large: int,
                env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(main thread, other threads) instructions per request: two runs, the difference per extra request."""
    low, high = count(argv_of(small), env), count(argv_of(large), env)
    return (high[0] - low[0]) / (large - small), (high[1] - low[1]) / (large - small)
