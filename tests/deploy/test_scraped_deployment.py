"""A real Prometheus scrapes the compose file's own `kansoku run ... --workers 2`: every query has data.

The app runs exactly as deploy/compose.yaml runs it (its command, two workers), on SQLite instead
of PostgreSQL; Prometheus (Debian's package) loads deploy/prometheus/rules and scrapes it every
second while the demo's traffic generator drives it. Then every expression of the Grafana
dashboard and of the rule files is asked of Prometheus and must return series.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .test_compose import KANSOKU, compose
from .test_prometheus_kit import RULE_FILES, dashboard_queries, rule_exprs, tool

pytestmark = [pytest.mark.slow, pytest.mark.prometheus, pytest.mark.timeout(300)]

_COMPARISON = re.compile(r"\s*(?:>|<|==|!=|>=|<=)\s*[0-9.]+\s*$")


def grafana_promql(expr: str) -> str:
    """A dashboard expression as Grafana sends it here: every job, a rate window of 30 s."""
    return expr.replace("$__rate_interval", "30s").replace('=~"$job"', '=~".+"')


def rule_operands() -> list[str]:
    """The recording expressions, and each side of an alert's `and`, its threshold removed."""
    exprs, _ = rule_exprs()
    operands = []
    for expr in exprs:
        for part in expr.split(" and "):
            operands.append(_COMPARISON.sub("", part).strip())
    return operands


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    """Poll `url` until it answers; fail if the process exits or it never answers."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {deadline_s}s")


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector of `promql` now."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The compose app command on a free port, Prometheus with the shipped rules, demo traffic."""
    tmp = tmp_path_factory.mktemp("deployment")
    command = list(compose()["services"]["app"]["command"])
    assert command[:2] == ["kansoku", "run"] and command[command.index("--workers") + 1] == "2"
    port = free_port()
    command[0] = str(KANSOKU)
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {**os.environ, "KANSOKU_DATABASE_URL": f"sqlite:///{tmp / 'kansoku.db'}", "KANSOKU_LOG_FORMAT": "json",
           "KANSOKU_ALERT_DISPATCHER": "false", "KANSOKU_SERVICE_NAME": "shop"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    app_log = (tmp / "app.log").open("wb")
    app = subprocess.Popen(command, cwd=tmp, env=env, stdout=app_log, stderr=subprocess.STDOUT)
    processes = [app]
    try:
        app_url = f"http://127.0.0.1:{port}"
        wait_http(f"{app_url}/health", app)
        config = tmp / "prometheus.yml"
        rules = ", ".join(f"'{path}'" for path in RULE_FILES)
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{rules}]\n"
            "scrape_configs:\n"
            f"- job_name: kansoku\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
        prom_port = free_port()
        prometheus = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'prom'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--enable-feature=exemplar-storage",
             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(prometheus)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom_url}/-/ready", prometheus)
        traffic = subprocess.Popen(
            [sys.executable, "-m", "kansoku.demo.traffic", "--url", app_url, "--rate", "25", "--duration", "120"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(traffic)
        yield {"app": app_url, "prometheus": prom_url}
    finally:
        for process in reversed(processes):
            _stop(process)
        app_log.close()


def _without_data(prometheus: str, exprs: list[str]) -> list[str]:
    return [expr for expr in exprs if not query(prometheus, expr)]


def test_every_dashboard_and_rule_expression_has_data(deployment: dict[str, str]) -> None:
    """Each Grafana panel's and rule's expression returns series from the two-worker app."""
    prometheus = deployment["prometheus"]
    exprs = [grafana_promql(e) for e in dashboard_queries()] + rule_operands()
    missing = exprs
    deadline = time.monotonic() + 100
    while missing and time.monotonic() < deadline:  # rates need two scrapes, some panels rare calls
        missing = _without_data(prometheus, missing)
        if missing:
            time.sleep(1)
    assert missing == []


def test_process_metrics_per_worker_and_self_metrics_from_the_start(deployment: dict[str, str]) -> None:
    """Two workers: two resident-memory series (pid label); kansoku's queue and error series exist."""
    prometheus = deployment["prometheus"]
    checks = {
        'count(process_resident_memory_bytes{job="kansoku"})': "2",
        'count(count by (pid) (kansoku_queue_capacity{job="kansoku",queue="errors"}))': "2",
        'sum(kansoku_dropped_events_total{job="kansoku"})': "0",
        'sum(kansoku_internal_errors_total{job="kansoku",where="worker:errors"})': "0",
        'count(rate(process_cpu_seconds_total{job="kansoku"}[30s]))': "1",
    }
    found: dict[str, str | None] = {}
    deadline = time.monotonic() + 60
    while found != checks and time.monotonic() < deadline:
        found = {expr: next((r["value"][1] for r in query(prometheus, expr)), None) for expr in checks}
        if found != checks:
            time.sleep(1)
    assert found == checks


def test_scrapes_are_not_app_traffic_and_exemplars_reach_prometheus(deployment: dict[str, str]) -> None:
    """No http_requests_total series for /metrics; latency buckets carry trace-id exemplars."""
    prometheus = deployment["prometheus"]
    # One scrape can miss its 1 s timeout on a loaded machine: wait for a successful one.
    deadline, up = time.monotonic() + 60, None
    while up != "1" and time.monotonic() < deadline:
        up = next((r["value"][1] for r in query(prometheus, 'up{job="kansoku"}')), None)
        if up != "1":
            time.sleep(1)
    assert up == "1"
    exemplars: list[Any] = []
    deadline = time.monotonic() + 60
    while not exemplars and time.monotonic() < deadline:
        now = time.time()
        response = httpx.get(f"{prometheus}/api/v1/query_exemplars", timeout=10, params={
            "query": 'http_request_duration_seconds_bucket{job="kansoku"}', "start": now - 300, "end": now})
        exemplars = [e for series in response.json()["data"] for e in series["exemplars"]]
        if not exemplars:
            time.sleep(1)
    assert exemplars and all(re.fullmatch(r"[0-9a-f]{32}", e["labels"]["trace_id"]) for e in exemplars)
    assert query(prometheus, 'http_requests_total{job="kansoku",route=~"/metrics|/health|/ready"}') == []


def test_promtool_accepts_the_two_worker_exposition(deployment: dict[str, str]) -> None:
    """`promtool check metrics` finds nothing to complain about in the summed /metrics."""
    body = httpx.get(f"{deployment['app']}/metrics", timeout=10).content
    done = subprocess.run([tool("promtool"), "check", "metrics"], input=body, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
