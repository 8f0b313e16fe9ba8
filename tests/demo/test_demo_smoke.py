"""`kansoku demo` end to end: traffic, error groups, metrics, trace ids in logs, an alert; Ctrl-C loses nothing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

DemoStarter = Callable[..., Any]  # the `demo_process` fixture of conftest.py


def wait_for(check: Callable[[], Any], what: str, process: Any, timeout: float = 45.0) -> Any:
    """Poll `check()` until it returns something truthy; fail with the demo's stderr otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            pytest.fail(f"the demo exited ({process.proc.returncode}) waiting for {what}:\n{process.stderr()}")
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"no {what} after {timeout}s:\n{process.stderr()[-3000:]}")


def requests_by(metrics: str, route: str, status: str) -> float:
    """http_requests_total for one route and status, summed over methods."""
    return sum(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name == "http_requests_total" and s.labels.get("route") == route
               and s.labels.get("status") == status)


@pytest.mark.slow
def test_demo_end_to_end(demo_process: DemoStarter, tmp_path: Path, port: int) -> None:
    """Within seconds the demo has error groups, request metrics, traced logs and a sent alert; SIGINT
    stops it with exit 0, and the store holds every request and error the traffic caused."""
    demo = demo_process("--port", str(port), "--rate", "25")
    base = f"http://127.0.0.1:{port}"
    banner = wait_for(lambda: "Ctrl-C stops" in demo.stderr() and demo.stderr(), "banner", demo)
    for line in (f"{base}/kansoku/", f"{base}/metrics", "no login from this machine", ".kansoku/kansoku.db"):
        assert line in banner

    def groups_now() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(
            f"{base}/kansoku/api/errors?status=unresolved,resolved,ignored").json()["items"]
        return items

    # The traffic is random: wait until both payment failures the checks below count have happened.
    wanted = ("PaymentLimitExceeded", "PaymentValidationError")
    groups = wait_for(lambda: (g := groups_now()) and len(g) >= 3
                      and all(any(x["exception_type"].endswith(w) for x in g) for w in wanted) and g,
                      "three error groups, both payment failures among them", demo)
    assert {"business_logic"} <= {g["category"] for g in groups}
    wait_for(lambda: requests_by(httpx.get(f"{base}/metrics").text, "/payments", "500") > 0,
             "a 500 on /payments in /metrics", demo)
    sent = wait_for(lambda: [d for d in httpx.get(f"{base}/kansoku/api/alerts/deliveries").json()["items"]
                             if d["status"] == "sent"], "a sent alert notification", demo)
    assert {"log"} == {d["channel"] for d in sent}

    assert demo.stop() == 0
    assert "kansoku demo stopped" in demo.stderr()
    assert "internal error" not in demo.stderr(), "kansoku reported a failure of its own while stopping"

    traffic = json.loads((tmp_path / ".kansoku" / "demo-traffic.json").read_text())
    by = traffic["by_route_status"]
    with sqlite3.connect(tmp_path / ".kansoku" / "kansoku.db") as db:
        counts = dict(db.execute("SELECT exception_type, count FROM kansoku_error_groups").fetchall())
        errors_5xx = db.execute("SELECT SUM(errors_5xx) FROM kansoku_request_stats").fetchone()[0]
        outbox = db.execute("SELECT status, COUNT(*) FROM kansoku_outbox GROUP BY status").fetchall()

    def count_of(exception: str) -> int:
        return sum(n for name, n in counts.items() if name.endswith(exception))

    # Nothing lost: every failure the traffic saw is in the store, and every request in the statistics.
    assert count_of("PaymentLimitExceeded") == by.get("POST /payments 500", 0) > 0
    assert count_of("PaymentValidationError") == by.get("POST /payments 422", 0) > 0
    assert count_of("PaymentDeclined") == by.get("POST /payments 402", 0)
    five_hundreds = sum(n for key, n in by.items() if key.endswith(" 500"))
    assert errors_5xx == five_hundreds
    assert dict(outbox).get("sent", 0) >= 1

    lines = [json.loads(line) for line in demo.stdout().splitlines() if line.startswith("{")]
    assert [line for line in lines if line.get("logger") == "httpx"] == [], "the traffic driver's client lines"
    # kansoku's own routes (the dashboard API and /metrics polled above) are not traced (observe_exclude)
    own = {line["request_id"] for line in lines if line.get("logger") == "kansoku.access"
           and str(line.get("path", "")).startswith(("/kansoku", "/metrics", "/health", "/ready"))}
    in_requests = [line for line in lines if line.get("request_id") and line["request_id"] not in own]
    assert in_requests, "request log lines"
    assert all(line.get("trace_id") for line in in_requests), "every request's log line has its trace id"
    assert any(line.get("category") == "audit" for line in in_requests)
    notifications = [line for line in lines if line.get("logger", "").startswith("kansoku.alerts")]
    assert notifications, "the log channel wrote the notification"
    log_files = list((tmp_path / ".kansoku" / "logs").glob("*.log"))
    assert log_files and all(path.stat().st_size > 0 for path in log_files)
