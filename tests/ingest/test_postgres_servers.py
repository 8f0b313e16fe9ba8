"""Several `kansoku server` processes behind one address share a PostgreSQL store."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from kansoku.settings import load_settings
from kansoku.store import Store, migrations
from kansoku.store.projects import create_project
from kansoku.store.tables import error_groups, outbox

from .conftest import ServerProcess, sentry_envelope

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ALERTS = ('{"channels": [{"name": "log", "type": "log"}], "rules": [{"name": "any", '
          '"error_count_threshold": 1, "suppression_minutes": 60}], "group_wait_seconds": 0}')


def test_two_servers_one_store_one_group_one_alert(postgres_url: str, tmp_path: Path) -> None:
    """Events of one error sent to two servers at once: one group with the exact count, one alert."""
    import psycopg

    name = f"kt_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    migrations.upgrade(url)
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "shared")
    store.close()
    servers = [ServerProcess(url, tmp_path, KANSOKU_ALERTS=ALERTS) for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready()

        def send(server: ServerProcess) -> None:
            endpoint = f"{server.url}/api/{project.id}/envelope/?sentry_key={project.key}"
            with httpx.Client(timeout=30) as http:
                for _ in range(100):
                    assert http.post(endpoint, content=sentry_envelope(uuid.uuid4().hex)).status_code == 200

        threads = [threading.Thread(target=send, args=(server,)) for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert [server.stop() for server in servers] == [-15, -15]
        engine = create_engine(url)
        with engine.connect() as conn:
            groups = conn.execute(select(error_groups.c.count)).scalars().all()
            alerts = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        engine.dispose()
        assert (groups, alerts) == ([200], 1)
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


