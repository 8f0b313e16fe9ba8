"""A real Prometheus (Debian's package) scrapes an instrumented uvicorn app; PromQL sees the requests."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port, uvicorn, wait_http


def _binary(name: str) -> str:
    for _ in range(60):  # installed by .ci/run (apt); wait for a concurrent install rather than skip
        path = shutil.which(name)
        if path:
            return path
        time.sleep(5)
    raise AssertionError(f"{name} is not installed: apt-get install --no-install-recommends prometheus")


def _query(prometheus: str, promql: str) -> list[dict[str, object]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


@pytest.mark.slow
@pytest.mark.prometheus
def test_prometheus_scrapes_the_request_count(tmp_path: Path) -> None:
    """PromQL over the scraped /metrics returns exactly the number of requests the test sent."""
    sent = 37
    with uvicorn() as (app_url, _app):
        target = app_url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"- job_name: kansoku\n  static_configs: [{{targets: ['{target}']}}]\n")
        port = free_port()
        prometheus = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/-/ready", prometheus)
            with httpx.Client(base_url=app_url) as client:
                for i in range(sent):
                    assert client.get(f"/items/{i}").status_code == 200
            promql = 'sum(http_requests_total{job="kansoku", route="/items/{item_id}", status="200"})'
            value = None
            for _ in range(150):  # scrapes every second; wait for one after the last request
                result = _query(base, promql)
                value = float(result[0]["value"][1]) if result else None  # type: ignore[index]
                if value == sent:
                    break
                time.sleep(0.2)
            assert value == sent
            up = _query(base, 'up{job="kansoku"}')
            assert up[0]["value"][1] == "1"  # type: ignore[index]
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=20)
