"""Real uvicorn processes: the JSON 500 over the wire, and two workers summing their metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kansoku.metrics._multiprocess import prepare

from .servers import server_output, uvicorn


def _requests_total(text: str, route: str) -> float:
    families = [f for f in text_string_to_metric_families(text) if f.name == "http_requests"]
    return sum(sample.value for family in families for sample in family.samples
               if sample.name == "http_requests_total" and sample.labels["route"] == route)


@pytest.mark.slow
def test_uvicorn_client_gets_json_500_and_server_sees_the_error() -> None:
    """Over a real socket the client gets the JSON 500; uvicorn logs the re-raised exception."""
    with uvicorn() as (url, process), httpx.Client(base_url=url) as client:
        response = client.get("/boom", headers={"X-Request-ID": "wire-1"})
        assert response.status_code == 500
        event_id = f"served-{response_pid(client)}"
        assert response.json() == {"error": "internal_server_error", "event_id": event_id}
        assert response.headers["x-request-id"] == "wire-1"
        assert client.get("/items/1").status_code == 200  # the server goes on serving
        output = server_output(process)
    assert "Exception in ASGI application" in output
    assert "ValueError: served failure" in output


def response_pid(client: httpx.Client) -> int:
    """The pid of the (single) worker."""
    return int(client.get("/items/0").json()["pid"])


@pytest.mark.slow
def test_two_uvicorn_workers_sum_to_the_requests_sent(tmp_path: Path) -> None:
    """Two uvicorn workers in multi-process mode: every scrape reports exactly the N requests sent."""
    directory = tmp_path / "prom"
    prepare(directory)
    with uvicorn(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}) as (url, _process):

        def one(i: int) -> int:
            with httpx.Client(base_url=url, headers={"Connection": "close"}) as client:
                response = client.get(f"/items/{i}")
                assert response.status_code == 200
                return int(response.json()["pid"])

        pids: set[int] = set()
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while len(pids) < 2 and sent < 4000:  # until both workers have served some
                pids |= set(pool.map(one, range(sent, sent + 100)))
                sent += 100
        assert len(pids) == 2, "the kernel gave every connection to one worker"
        with httpx.Client(base_url=url, headers={"Connection": "close"}) as client:
            scrapes = [client.get("/metrics").text for _ in range(6)]  # both workers answer some
    assert [_requests_total(text, "/items/{item_id}") for text in scrapes] == [float(sent)] * 6
