"""`kansoku.serve_metrics`: /metrics and /health from a process that serves no web app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import kansoku
from kansoku.testing import isolated_runtime


def test_serves_the_runtimes_metrics_with_its_token(tmp_path: Path) -> None:
    """The runtime's registry (job metrics included) behind metrics_token; /health open; other paths 404."""
    with isolated_runtime(tmp_path, metrics_token="s3cret", dashboard=False):
        with kansoku.job("nightly"):
            pass
        server = kansoku.serve_metrics(port=0)
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            assert httpx.get(f"{base}/metrics").status_code == 401
            assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            scraped = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer s3cret"})
            assert scraped.status_code == 200
            assert 'kansoku_job_runs_total{job="nightly",status="ok"} 1.0' in scraped.text
            assert httpx.get(f"{base}/health").json() == {"status": "ok"}
            assert httpx.get(f"{base}/kansoku/").status_code == 404
        finally:
            server.shutdown()
            server.server_close()


def test_needs_a_port(tmp_path: Path) -> None:
    """With no port given and none configured, it says which setting to set."""
    with isolated_runtime(tmp_path, dashboard=False), pytest.raises(ValueError, match="worker_metrics_port"):
        kansoku.serve_metrics()
