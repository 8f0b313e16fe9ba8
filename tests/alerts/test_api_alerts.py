"""The alerting JSON API: rules (secrets masked), the delivery log, silences, retrying dead rows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.outbox import claim, mark_failed
from kansoku.web.api_alerts import routes

CONFIG = {
    "channels": [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/in?token=sekrit", "secret": "s"},
        {"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/sekrit"},
    ],
    "rules": [{"name": "crit", "channels": ["hook"], "severity_threshold": "critical"}],
    "group_wait_seconds": 0,
}


@pytest.fixture
def api(store: Engine, clock: Any) -> tuple[httpx.AsyncClient, AlertEngine]:
    """The routes in a bare app, over a real store."""
    engine = AlertEngine(parse_alerting(CONFIG), store, clock=clock)
    app = Starlette(routes=routes(store, engine))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), engine


async def test_rules_without_secrets(api: Any) -> None:
    """GET /api/alerts/rules lists rules and channels; no secret, token or URL path is shown."""
    client, _ = api
    response = await client.get("/api/alerts/rules")
    assert response.status_code == 200
    assert "sekrit" not in response.text
    data = response.json()
    assert [(r["name"], r["routed_to"], r.get("firing_groups", 0)) for r in data["rules"]] == [
        ("crit", ["hook"], 0)]
    hook, slack = data["channels"]
    assert (hook["url"], hook["secret"], hook["sends_resolutions"]) == (
        "http://127.0.0.1/…", "**********", True)
    assert slack["webhook_url"] == "**********"


async def test_deliveries_and_retry_of_a_dead_row(kit: Any, api: Any, store: Engine, clock: Any) -> None:
    """A dead notification is listed with its error; retry puts it back; only dead rows can be retried."""
    client, engine = api
    engine.on_error(kit.event(), kit.change())
    await Dispatcher(engine.config, store, clock=clock).dispatch_once()  # port 9 refuses: retried later
    page = (await client.get("/api/alerts/deliveries")).json()
    [item] = page["items"]
    assert (page["total"], item["status"], item["attempts"], item["title"]) == (
        1, "pending", 1, "ValueError: amount over limit")
    assert "ConnectError" in item["last_error"] and "sekrit" not in item["last_error"]
    assert (await client.post(f"/api/alerts/deliveries/{item['id']}/retry")).status_code == 409
    clock.advance(3600)
    [row] = claim(store, "w", clock())
    mark_failed(store, [row.id], "w", clock(), "gone", attempts=row.attempts, max_attempts=1)
    dead = (await client.get("/api/alerts/deliveries", params={"status": "dead"})).json()
    assert [i["id"] for i in dead["items"]] == [item["id"]]
    retried = await client.post(f"/api/alerts/deliveries/{item['id']}/retry")
    assert (retried.status_code, retried.json()) == (200, {"id": item["id"], "status": "pending"})
    assert (await client.post("/api/alerts/deliveries/999/retry")).status_code == 404
    assert (await client.get("/api/alerts/deliveries", params={"status": "bogus"})).status_code == 400


async def test_silences_create_list_expire(kit: Any, api: Any, store: Engine, clock: Any) -> None:
    """POST a silence (it holds the alert back), list it, expire it (alerts flow again)."""
    client, engine = api
    created = await client.post("/api/alerts/silences", json={"rule": "crit", "duration_minutes": 30,
                                                             "comment": "deploy", "created_by": "ayumi"})
    assert created.status_code == 201
    silence = created.json()
    assert (silence["rule"], silence["ends_at"], silence["comment"]) == ("crit", kit.T0 + 1800, "deploy")
    engine.on_error(kit.event(), kit.change())
    assert (await client.get("/api/alerts/deliveries")).json()["total"] == 0
    listed = (await client.get("/api/alerts/silences")).json()["items"]
    assert [s["id"] for s in listed] == [silence["id"]]
    expired = await client.post(f"/api/alerts/silences/{silence['id']}/expire")
    assert expired.json() == {"id": silence["id"], "expired": True}
    assert (await client.get("/api/alerts/silences")).json()["items"] == []
    assert len((await client.get("/api/alerts/silences", params={"all": "1"})).json()["items"]) == 1
    engine.on_error(kit.event(), kit.change())
    assert (await client.get("/api/alerts/deliveries")).json()["total"] == 1
    assert (await client.post(f"/api/alerts/silences/{silence['id']}/expire")).status_code == 404


@pytest.mark.parametrize(("body", "error"), [
    ({"duration_minutes": 5}, "at least one of rule"),
    ({"rule": "crit", "duration_minutes": -1}, "duration_minutes"),
    ({"rule": "crit", "ends_at": 1}, "must end in the future"),
    ({"rule": 5}, "'rule' must be a string"),
    ([1, 2], "expected a JSON object"),
])
async def test_bad_silences(api: Any, body: Any, error: str) -> None:
    """Invalid silences are a 400 that says why."""
    client, _ = api
    response = await client.post("/api/alerts/silences", json=body)
    assert response.status_code == 400 and error in response.json()["error"]
