"""Real framework apps (tests/integrations/apps) served by real servers in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from kansoku.store import queries
from kansoku.store.tables import spans

APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent
_FOREIGN = ("KANSOKU_", "_KANSOKU_", "OTEL_", "PROMETHEUS_MULTIPROC_DIR")


class Server:
    """One server process (its own session), its output in a file, its store in `directory`."""

    def __init__(self, command: list[str], directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.log_path = directory / "server.log"
        self.engine: Engine = create_engine(f"sqlite:///{directory / 'kansoku.db'}")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=APPS, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def lines(self, logger: str) -> list[dict[str, Any]]:
        """The JSON log lines of `logger` printed so far."""
        found = []
        for line in self.output().splitlines():
            if line.startswith("{") and f'"logger":"{logger}"' in line:
                found.append(json.loads(line))
        return found

    def wait_ready(self, base: str, deadline_s: float = 60.0) -> None:
        """Poll /health until it answers; fail with the output if the server exits or never answers."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()[-5000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{base}/health did not answer in {deadline_s}s:\n{self.output()[-5000:]}")

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        """`how` to the server's session (SIGTERM: graceful for gunicorn; SIGINT: Ctrl-C for `kansoku
        run`, whose uvicorn re-raises SIGTERM after its graceful stop), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, how)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)
        finally:
            self.engine.dispose()

    def group(self, text: str, deadline_s: float = 20.0) -> dict[str, Any]:
        """The error group whose title or message has `text`, with its latest event (polled)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                found = queries.list_groups(self.engine, text=text)["items"]
            except Exception:  # the store is made by the server's first worker
                found = []
            if found:
                group = queries.get_group(self.engine, found[0]["id"], events=5)
                assert group is not None
                return group
            time.sleep(0.1)
        pytest.fail(f"no error group with {text!r} in {deadline_s}s:\n{self.output()[-3000:]}")

    def groups(self) -> list[dict[str, Any]]:
        """Every error group stored."""
        return list(queries.list_groups(self.engine, limit=100)["items"])

    def span(self, trace_id: str, deadline_s: float = 20.0) -> dict[str, Any]:
        """The server span of the trace `trace_id` (polled)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with self.engine.connect() as conn:
                    row = conn.execute(select(spans).where(spans.c.trace_id == trace_id)).mappings().first()
            except Exception:
                row = None
            if row is not None:
                return dict(row)
            time.sleep(0.1)
        pytest.fail(f"no span of trace {trace_id} in {deadline_s}s")


def server_env(directory: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no caller's kansoku settings, a store in `directory`, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env.update(KANSOKU_DATABASE_URL=f"sqlite:///{directory / 'kansoku.db'}", KANSOKU_LOG_FORMAT="json",
               PYTHONUNBUFFERED="1", PYTHONPATH=str(APPS), DJANGO_SETTINGS_MODULE="mysite.settings")
    env.update(extra)
    return env


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a server command (`kansoku`, `gunicorn`, `uvicorn` are the installed scripts); stopped after."""
    started: list[Server] = []

    def start(program: str, *args: str, env: dict[str, str] | None = None) -> Server:
        server = Server([str(BIN / program), *args], tmp_path, server_env(tmp_path, **(env or {})))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
