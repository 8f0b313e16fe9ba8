"""What the OTLP log export costs a log line: CPU of the logging thread and of the whole process.

kansoku's JSON log path to /dev/null, with and without the OTLP log sink (its exporter replaced by
one that sends nothing, so that only kansoku's and the SDK's work is measured), interleaved
rounds, medians. The logging thread pays the copy and the queue put; the SDK's record building,
attribute checks and protobuf encoding run in the export threads (the whole process's figure).

    python bench/logging/bench_otlp_logs.py [--lines 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from kansoku.logs import configure_logging, get_logger
from kansoku.logs._otlp import OtlpLogs
from kansoku.settings import load_settings


class _Nowhere(LogRecordExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


def _round(sinks: list[Any], lines: int) -> tuple[float, float]:
    configure_logging(load_settings(log_format="json"), stream=_NULL, sinks=sinks)
    log = get_logger("bench")
    thread, process = time.thread_time(), time.process_time()
    for i in range(lines):
        log.info("order created", order_id=i, amount=12.5)
    thread = time.thread_time() - thread
    for sink in sinks:
        sink.flush()
    return thread / lines * 1e6, (time.process_time() - process) / lines * 1e6


_NULL = open("/dev/null", "wb")  # noqa: SIM115 - the whole run's stream


def main() -> None:
    """Interleave rounds without and with the sink; print the medians in microseconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sink = OtlpLogs(None, Resource.create({"service.name": "bench"}), exporter=_Nowhere())
    plain, otlp = [], []
    for _ in range(args.rounds):
        plain.append(_round([], args.lines))
        otlp.append(_round([sink], args.lines))
    sink.shutdown()
    for name, rows in (("without the sink", plain), ("with the OTLP sink", otlp)):
        print(f"{name}: logging thread {statistics.median(r[0] for r in rows):.2f} us/line, "
              f"whole process {statistics.median(r[1] for r in rows):.2f} us CPU/line")


if __name__ == "__main__":
    main()
