"""A real kansoku server (its Starlette app under uvicorn) on a SQLite store, with one project."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kansoku.runtime.server import Server, build_server
from kansoku.settings import load_settings
from kansoku.store.projects import Project, create_project, sender_config


@dataclass
class Running:
    """A served kansoku server: its URL, its parts, one project and that project's sender config."""

    url: str
    server: Server
    project: Project
    config: dict[str, str]

    @property
    def engine(self) -> Any:
        """The store's engine."""
        return self.server.engine


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(0.05)


@pytest.fixture
def start_server(tmp_path: Path, serve_app: Any) -> Iterator[Callable[..., Running]]:
    """`start_server(**settings)`: a kansoku server on a fresh SQLite store, with project "shop"."""
    from contextlib import ExitStack

    stack = ExitStack()

    def start(rate_limit: int | None = None, **overrides: Any) -> Running:
        settings = load_settings(database_url=f"sqlite:///{tmp_path / 'server.db'}", strict=True,
                                 alert_dispatcher=False, **overrides)
        app, server = build_server(settings)
        project = create_project(server.engine, "shop", rate_limit=rate_limit)
        url = stack.enter_context(serve_app(app))
        return Running(url, server, project, sender_config(project, url))

    with stack:
        yield start


@pytest.fixture
def running(start_server: Callable[..., Running]) -> Running:
    """A kansoku server with default settings."""
    return start_server()
