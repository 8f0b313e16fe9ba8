"""deploy/: Prometheus, Alertmanager and Grafana files are valid, and name only metrics kansoku exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import kansoku
from kansoku import runtime as _runtime

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kansoku.json"

_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
})
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def tool(name: str) -> str:
    """Path of a Prometheus tool; the test fails with the install command when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install --no-install-recommends prometheus prometheus-alertmanager")
    return path


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a Prometheus tool in deploy/prometheus; fail with its output when it fails."""
    done = subprocess.run([tool(args[0]), *args[1:]], cwd=PROM, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (strings, matchers, ranges, grouping labels removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue  # a function call or a keyword
        names.add(match.group(0))
    return names


def selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric name, label names in its matchers) for every `name{...}` selector."""
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
        labels = {m.group(1) for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2))}
        yield match.group(1), labels


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the Grafana dashboard, variable queries included."""
    data = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    for variable in data["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(re.sub(r"^label_values\((\w+),.*\)$", r"\1", query["query"]))
    return exprs


def rule_exprs() -> tuple[list[str], set[str]]:
    """Alerting and recording expressions of the rule files, and the names the recording rules make."""
    exprs, recorded = [], set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs.append(rule["expr"])
                if "record" in rule:
                    recorded.add(rule["record"])
    return exprs, recorded


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, serve_app: Any) -> dict[str, set[str]]:
    """Series names (-> label names) on /metrics of the demo app, after a bit of every kind of traffic."""
    from kansoku.demo.app import create_app

    directory = tmp_path_factory.mktemp("scrape")
    app = kansoku.instrument(create_app(), database_url=f"sqlite:///{directory / 'k.db'}", strict=True,
                             log_format="json", service_name="scrape-test")
    try:
        with serve_app(app) as base, httpx.Client(base_url=base) as client:
            user = client.post("/users", json={"email": "a@example.com", "name": "A"}).json()
            client.get(f"/users/{user['id']}")
            client.post("/orders", json={"items": [{"product_id": "mouse", "quantity": 1}], "user_id": user["id"]})
            client.post("/payments", json={"amount": 20_000, "card_number": "4111 1111 1111 1111"})
            client.post("/data/process", json=[{"id": 1, "data": {"v": 1}}, {"id": 2, "data": "bad"}])
            text = client.get("/metrics").text
    finally:
        _runtime.shutdown(5.0)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for name in (family.name, *(family.name + s for s in _SUFFIXES.get(family.type, ()))):
            names.setdefault(name, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.mark.prometheus
def test_promtool_check_config() -> None:
    """prometheus.yml is valid, rule files included."""
    out = run_tool("promtool", "check", "config", "prometheus.yml")
    assert "SUCCESS" in out.stdout


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    """Every rule file is valid."""
    run_tool("promtool", "check", "rules", *(str(p) for p in RULE_FILES))


@pytest.mark.prometheus
def test_promtool_rule_unit_tests() -> None:
    """The alerting rules fire on the synthetic series of tests/, and only when they should."""
    out = run_tool("promtool", "test", "rules", "tests/kansoku-rules.test.yml")
    assert "SUCCESS" in out.stdout


@pytest.mark.prometheus
def test_amtool_check_config() -> None:
    """The example Alertmanager configuration is valid."""
    done = subprocess.run([tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_grafana_queries_name_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    """Every metric a Grafana panel reads is on an instrumented app's /metrics."""
    used = set().union(*(metric_names(e) for e in dashboard_queries()))
    assert used, "the dashboard has queries"
    assert used - set(exported) == set()


def test_grafana_matchers_use_existing_labels(exported: dict[str, set[str]]) -> None:
    """Label matchers in the dashboard name labels the metric has (job is added by Prometheus)."""
    for expr in dashboard_queries():
        for name, labels in selectors(expr):
            assert labels - {"job", "instance"} <= exported[name], (name, labels, expr)


def test_prometheus_rules_name_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    """Rules read only exported metrics, `up`, and the series other rules record."""
    exprs, recorded = rule_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used - set(exported) - recorded - {"up"} == set()
    for expr in exprs:
        for name, labels in selectors(expr):
            if name in exported:
                assert labels - {"job", "instance"} <= exported[name], (name, labels, expr)


def test_dashboard_panels_have_unique_ids_and_the_datasource_variable() -> None:
    """Grafana needs unique panel ids; every query panel uses the ${datasource} variable."""
    data = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_metric_name_extraction() -> None:
    """The PromQL reader finds metric names and skips functions, labels, ranges and variables."""
    expr = ('histogram_quantile(0.95, sum by (route, le) (rate(http_request_duration_seconds_bucket'
            '{job=~"$job",route!="/x"}[$__rate_interval]))) / on(job) group_left up and bool foo:bar:rate5m')
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up", "foo:bar:rate5m"}
