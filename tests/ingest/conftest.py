"""A real kansoku server (its Starlette app under uvicorn) on a SQLite store, with one project."""

from __future__ import annotations

import os
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


NODE_DIR = Path(__file__).with_name("node")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The JavaScript SDKs of tests/ingest/node/package-lock.json, `npm ci`-installed once per lock
    into ~/.cache/kansoku-tests (about 40 s the first time, then nothing)."""
    import hashlib
    import shutil
    import subprocess

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the JavaScript SDK tests: run scripts/install-system-deps")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    target = Path.home() / ".cache" / "kansoku-tests" / f"node-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules").is_dir():
        building = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_DIR / name, building / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=building, check=True,
                       timeout=600, stdout=subprocess.DEVNULL)
        try:
            building.rename(target)  # atomic: a concurrent session either wins or finds it done
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    return target / "node_modules"


def run_node(node_modules: Path, script: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run tests/ingest/node/SCRIPT with `env` (plus PATH and NODE_PATH); its stdout."""
    import subprocess

    full = {"PATH": os.environ["PATH"], "NODE_PATH": str(node_modules), "HOME": os.environ.get("HOME", "/tmp"),
            **env}
    done = subprocess.run(["node", str(NODE_DIR / script)], env=full, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


INVENTORY_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def inventory(request):
    return JSONResponse({"sku": 42, "in_stock": 0})

app = Starlette(routes=[Route("/inventory", inventory)])
'''


@pytest.fixture
def inventory_service(tmp_path: Path, running: Running) -> Iterator[str]:
    """A kansoku-instrumented Starlette service (`kansoku run`) exporting its spans to the server by
    the standard OTEL_* variables only; yields its /inventory URL."""
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app_dir = tmp_path / "inventory"
    app_dir.mkdir()
    (app_dir / "inventory.py").write_text(INVENTORY_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_"))}
    env.update(KANSOKU_SERVICE_NAME="inventory", KANSOKU_DATABASE_URL=f"sqlite:///{app_dir / 'own.db'}",
               KANSOKU_ACCESS_LOG="false", OTEL_EXPORTER_OTLP_ENDPOINT=running.config["otlp_endpoint"],
               OTEL_EXPORTER_OTLP_HEADERS=running.config["otlp_headers"], OTEL_BSP_SCHEDULE_DELAY="200")
    kansoku = Path(sys.executable).with_name("kansoku")
    with (app_dir / "stderr").open("wb") as stderr:
        proc = subprocess.Popen([str(kansoku), "run", "inventory:app", "--port", str(port)], cwd=app_dir, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    url = f"http://127.0.0.1:{port}/inventory"

    def answers() -> bool:
        assert proc.poll() is None, (app_dir / "stderr").read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, what="the inventory service")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class ServerProcess:
    """`kansoku server` as a process of its own on a free port (stopped with SIGTERM, then SIGKILL)."""

    def __init__(self, database_url: str, directory: Path, *args: str, **env: str) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"server-{self.port}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_"))}
        full.update(KANSOKU_DATABASE_URL=database_url, KANSOKU_LOG_LEVEL="WARNING", **env)
        kansoku = Path(sys.executable).with_name("kansoku")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(kansoku), "server", "--port", str(self.port), *args], env=full,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll /health until it answers; fail with the log if the process exits."""
        import httpx

        def answers() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, timeout=timeout, what=f"kansoku server on {self.url}")

    def stop(self) -> int:
        """SIGTERM and wait; the exit status (uvicorn re-raises the signal: -SIGTERM)."""
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)


def sentry_envelope(event_id: str, message: str = "burst") -> bytes:
    """A one-event Sentry envelope: a ValueError raised in app.orders.create."""
    import json

    event = json.dumps({"event_id": event_id, "exception": {"values": [
        {"type": "ValueError", "value": message, "stacktrace": {"frames": [
            {"module": "app.orders", "function": "create", "in_app": True, "lineno": 10}]}}]}}).encode()
    return b"{}\n" + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event
