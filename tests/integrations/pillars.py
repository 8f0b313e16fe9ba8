"""What every framework's served app must show, checked over the wire against one running server."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Server


@dataclasses.dataclass(frozen=True)
class App:
    """One framework's test app: its paths, its route templates, its own failure page."""

    framework: str
    items: str  # path of an item, with {i} for the id
    items_route: str  # its route template in kansoku's form
    boom: str
    boom_route: str
    boom_page: str  # a piece of the framework's own 500 page
    failure: str  # the message of the view's exception
    upstream: str
    stream: str


DJANGO = App("django", "/shop/items/{i}/", "/shop/items/{item_id}/", "/boom/", "/boom/", "Server Error (500)",
             "django view failed", "/upstream/", "/stream/")
DJANGO_ASGI = dataclasses.replace(DJANGO, stream="/astream/")
FLASK = App("flask", "/shop/items/{i}", "/shop/items/{item_id}", "/boom", "/boom", "Internal Server Error",
            "flask view failed", "/upstream", "/stream")
LITESTAR = App("litestar", "/items/{i}", "/items/{item_id}", "/boom", "/boom", '"status_code":500',
               "litestar handler failed", "/upstream", "/stream")


def requests_by_route(metrics: str) -> dict[str, float]:
    """http_requests_total summed by route label."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                route = sample.labels["route"]
                totals[route] = totals.get(route, 0.0) + sample.value
    return totals


def get_items(base: str, app: App, count: int) -> list[httpx.Response]:
    """GET `count` distinct item ids, 8 at a time, each on its own connection (so every worker serves)."""
    with httpx.Client(base_url=base, headers={"Connection": "close"}, timeout=20.0) as client:

        def one(i: int) -> httpx.Response:
            return client.get(app.items.format(i=i))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))


def check_served(server: Server, base: str, app: App, *, items: int = 1000, workers: int = 1) -> None:
    """Every pillar for one served app; see the test docstrings for the behaviours."""
    responses = get_items(base, app, items)
    check_responses_unchanged(responses, app)
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) == workers, f"{len(pids)} workers answered, {workers} expected"
    check_stream(base, app, server.directory)
    boom = httpx.get(base + app.boom, headers={"X-Test-User": "ada"})
    assert boom.status_code == 500 and app.boom_page in boom.text, "the framework's own 500 page"
    assert "event_id" not in boom.text
    upstream = httpx.get(base + app.upstream)
    assert (upstream.status_code, upstream.text) == (503, "upstream down")
    check_metrics(base, app, items, workers)
    check_access_lines(server, responses, app)
    check_errors(server, app)
    check_span(server, base, app)


def check_responses_unchanged(responses: list[httpx.Response], app: App) -> None:
    """The app's status, body and headers, plus kansoku's request id header and nothing else."""
    for i, response in enumerate(responses):
        assert response.status_code == 201
        assert response.json()["item"] == i
        assert response.headers["x-app"] == app.framework
        assert response.headers["content-type"].startswith("application/json")
        assert len(response.headers["x-request-id"]) == 32


def check_stream(base: str, app: App, directory: Path) -> None:
    """A streamed body reaches the client chunk by chunk: the app sends its second chunk only once the
    client holds the first, so a buffering middleware would deadlock here (the app gives up after 10 s)."""
    gate = directory / f"gate-{secrets.token_hex(4)}"
    started = time.monotonic()
    with httpx.stream("GET", base + app.stream, params={"gate": str(gate)}, timeout=30.0) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        gate.touch()
        rest = b"".join(chunks)
    assert (first + rest) == b"first;second" and first.startswith(b"first;")
    assert time.monotonic() - started < 9, "the second chunk waited for the app's deadline: the body was held"


def check_metrics(base: str, app: App, items: int, workers: int) -> None:
    """1,000 distinct ids are one series; each scrape (any worker) has every worker's count."""
    for _ in range(2 * workers):
        totals = requests_by_route(httpx.get(f"{base}/metrics", headers={"Connection": "close"}).text)
        assert totals[app.items_route] == items
        assert totals[app.boom_route] == 1
        assert not [route for route in totals if any(ch.isdigit() for ch in route)], totals


def check_access_lines(server: Server, responses: list[httpx.Response], app: App) -> None:
    """One access line per request, with the response's request id and the route template."""
    wanted = {r.headers["x-request-id"] for r in responses}
    deadline = time.monotonic() + 15
    while True:
        lines = [line for line in server.lines("kansoku.access") if line["route"] == app.items_route]
        if len(lines) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(line["request_id"] for line in lines) == sorted(wanted)
    assert {line["status"] for line in lines} == {201}


def check_errors(server: Server, app: App) -> dict[str, Any]:
    """The failure the framework rendered is one group with its traceback and route; the 503 answered
    without an exception is a group of its own; the 500 makes no second group."""
    group = server.group(app.failure)
    event = group["events"][0]
    assert event["exception_type"] == "ValueError" and event["handled"] is False
    assert event["request"]["route"] == app.boom_route and event["request"]["method"] == "GET"
    frames = event["exceptions"][-1]["frames"]
    assert frames[-1]["function"].endswith("boom") and frames[-1]["in_app"], frames[-1]
    assert frames[-1]["context_line"].strip().startswith("raise ValueError")
    upstream = server.group("answered 503")
    assert upstream["events"][0]["request"]["route"] == app.upstream
    titles = [g["title"] for g in server.groups()]
    assert not [t for t in titles if "answered 500" in t], titles
    return event


def check_span(server: Server, base: str, app: App) -> None:
    """The server span continues the caller's W3C trace and is named by the route template."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    response = httpx.get(base + app.items.format(i=424242), headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert response.status_code == 201
    span = server.span(trace_id)
    assert span["name"] == f"GET {app.items_route}"
    assert (span["kind"], span["parent_id"]) == ("SERVER", parent)
    assert span["attributes"]["http.route"] == app.items_route
    assert span["attributes"]["http.response.status_code"] == 201
