"""Logging throughput: kansoku vs the standard library + python-json-logger vs structlog's fastest.

Each contender runs in its own subprocess (one process tree, one run), writes N lines with the same
five context fields to a file, and reports lines/s; the median of several rounds is printed with
ratios. kansoku runs with redaction on (it cannot be turned off). The "unique" contenders write a
different message and note on every line (ids in free text, words that the redactor's pre-check
stops at, such as "shipping"), so kansoku's cache of clean strings never helps and every line is
scanned by the full rule set.

    python bench/logging/bench_logging.py [--lines 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTEXT = {"request_id": "4bf92f3577b34da6a3ce929d0e0e4736", "user_id": "user-1234", "session_id": "s-99",
           "operation": "checkout", "component": "orders"}


def _unique(i: int) -> tuple[str, str]:
    return f"order {i} created for customer c-{i * 7}", f"shipping label {i} printed, signed by clerk {i % 13}"


def run_kansoku(path: Path, lines: int, unique: bool = False) -> float:
    from kansoku import logs
    from kansoku.context import bind_context
    from kansoku.settings import load_settings

    with open(path, "w") as stream:
        saved, sys.stdout = sys.stdout, stream  # the production path: stdout, flusher thread
        try:
            logs.configure_logging(load_settings(log_format="json", stdlib_logging=False))
            bind_context(**CONTEXT)
            log = logs.get_logger("bench")
            start = time.perf_counter()
            if unique:
                for i in range(lines):
                    message, note = _unique(i)
                    log.info(message, order_id=i, amount=12.5, note=note)
            else:
                for i in range(lines):
                    log.info("order created", order_id=i, amount=12.5)
            logs.flush()  # every line on disk before the clock stops
            return time.perf_counter() - start
        finally:
            sys.stdout = saved


def run_stdlib_json(path: Path, lines: int) -> float:
    import logging

    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # python-json-logger < 3
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("bench")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    start = time.perf_counter()
    for i in range(lines):
        log.info("order created", extra={**CONTEXT, "order_id": i, "amount": 12.5})
    return time.perf_counter() - start


def run_structlog_fastest(path: Path, lines: int, unique: bool = False) -> float:
    import logging

    import orjson
    import structlog

    with open(path, "wb") as stream:
        structlog.configure(
            cache_logger_on_first_use=True,
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.JSONRenderer(serializer=orjson.dumps)],
            logger_factory=structlog.BytesLoggerFactory(file=stream),
        )
        structlog.contextvars.bind_contextvars(**CONTEXT)
        log = structlog.get_logger("bench")
        start = time.perf_counter()
        if unique:
            for i in range(lines):
                message, note = _unique(i)
                log.info(message, order_id=i, amount=12.5, note=note)
        else:
            for i in range(lines):
                log.info("order created", order_id=i, amount=12.5)
        return time.perf_counter() - start


def run_raw_floor(path: Path, lines: int) -> float:
    import orjson

    with open(path, "wb") as stream:
        start = time.perf_counter()
        for i in range(lines):
            stream.write(orjson.dumps({"event": "order created", "order_id": i, "amount": 12.5, **CONTEXT}) + b"\n")
            stream.flush()
        return time.perf_counter() - start


CONTENDERS = {
    "kansoku (json, 5 context fields, redaction)": run_kansoku,
    "stdlib + python-json-logger": run_stdlib_json,
    "structlog fastest (orjson, bytes logger)": run_structlog_fastest,
    "raw orjson.dumps + write floor": run_raw_floor,
    "kansoku, unique messages (full scan)": lambda path, lines: run_kansoku(path, lines, unique=True),
    "structlog fastest, unique messages": lambda path, lines: run_structlog_fastest(path, lines, unique=True),
}


def child(name: str, lines: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.log"
        seconds = CONTENDERS[name](path, lines)
        written = sum(1 for _ in path.open())
        assert written == lines, (name, written)
    print(json.dumps({"rate": lines / seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lines)
        return
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):
        for name in CONTENDERS:  # interleaved, so machine noise hits every contender alike
            out = subprocess.run([sys.executable, __file__, "--child", name, "--lines", str(args.lines)],
                                 capture_output=True, text=True, check=True)
            rates[name].append(json.loads(out.stdout)["rate"])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    stdlib = medians["stdlib + python-json-logger"]
    fastest = medians["structlog fastest (orjson, bytes logger)"]
    print(f"{'contender':<46} {'lines/s':>10} {'x stdlib':>9} {'x structlog-fastest':>20}")
    for name, rate in medians.items():
        base = medians["structlog fastest, unique messages"] if "unique" in name else fastest
        print(f"{name:<46} {rate:>10,.0f} {rate / stdlib:>9.2f} {rate / base:>20.2f}")
    print("(the unique-message rows are compared with structlog's fastest on the same unique lines)")
    print(f"(median of {args.rounds} rounds of {args.lines:,} lines each, one subprocess per contender and round)")


if __name__ == "__main__":
    main()
