"""Resolving a group through the errors API or the CLI queues resolutions where alerts fired."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select
from starlette.applications import Starlette

from kansoku.alerts import AlertEngine, parse_alerting
from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.store.tables import error_groups, outbox
from kansoku.web import api_errors

ALERTING = {"channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
            "rules": [{"name": "any", "suppression_minutes": 10}], "group_wait_seconds": 0}


def _fire(store: Engine, kit: Any, clock: Any) -> AlertEngine:
    """A stored group g1 whose rule fired (one trigger row in the outbox)."""
    with store.begin() as conn:
        conn.execute(insert(error_groups).values(
            group_key="g1", fingerprint_parts=["type"], title="ValueError: x", culprit="", exception_type="ValueError",
            message="x", severity="critical", category="application", service="shop", environment="test",
            status="unresolved", first_seen=clock(), last_seen=clock(), count=1))
    engine = AlertEngine(parse_alerting(ALERTING), store, clock=clock)
    engine.on_error(kit.event(), kit.change())
    return engine


def _kinds(store: Engine) -> list[str]:
    with store.connect() as conn:
        return sorted(conn.execute(select(outbox.c.kind)).scalars())


async def test_api_resolve_queues_a_resolution(store: Engine, kit: Any, clock: Any) -> None:
    """POST /api/errors/{id}/resolve writes a resolve notification for the rule that fired."""
    engine = _fire(store, kit, clock)
    assert _kinds(store) == ["trigger"]
    app = Starlette(routes=api_errors.routes(store, None, engine.on_resolve))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        response = await client.post("/api/errors/g1/resolve")
    engine.close()
    assert response.status_code == 200
    assert _kinds(store) == ["resolve", "trigger"]


def test_cli_resolve_queues_a_resolution(kit: Any, clock: Any, tmp_path: Path) -> None:
    """`kansoku errors resolve ID` writes a resolve notification for the rule that fired."""
    migrated = Store.open(load_settings(database_url=f"sqlite:///{tmp_path / 'k.db'}"))  # as the CLI expects
    store = migrated.engine
    engine = _fire(store, kit, clock)
    engine.close()
    config = tmp_path / "kansoku.toml"
    config.write_text('[alerts]\ngroup_wait_seconds = 0\n[[alerts.channels]]\nname = "hook"\ntype = "webhook"\n'
                      'url = "http://127.0.0.1:9/hook"\n[[alerts.rules]]\nname = "any"\nsuppression_minutes = 10\n')
    env = {**os.environ, "KANSOKU_CONFIG": str(config), "KANSOKU_DATABASE_URL": str(store.url)}
    done = subprocess.run([str(Path(sys.executable).parent / "kansoku"), "errors", "resolve", "g1"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert _kinds(store) == ["resolve", "trigger"]
    migrated.close()
