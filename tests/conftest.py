"""Fixtures shared by every test: strict mode, a throwaway PostgreSQL server, free ports."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import uvicorn

from kansoku import _safety


@pytest.fixture(autouse=True)
def _strict_internal_errors() -> Iterator[None]:
    """kansoku's internal errors raise in tests instead of being reported and swallowed."""
    _safety.set_strict(True)
    yield
    _safety.set_strict(False)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free port on 127.0.0.1."""
    return free_port()


def _pg_bindir() -> str:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return out.stdout.strip()
    initdb = shutil.which("initdb")
    if initdb is not None:
        return os.path.dirname(os.path.realpath(initdb))
    installed = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"))  # Debian's layout
    if not installed:
        raise RuntimeError("PostgreSQL server binaries are missing: run scripts/install-system-deps")
    return str(installed[-1].parent)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (started as an unprivileged user under root)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.port = free_port()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="kansoku-pg."))
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            user = "pgci"
            try:
                pwd.getpwnam(user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                               check=True)
            shutil.chown(self.tmp, user)
            self.prefix = ["runuser", "-u", user, "--"]
        self.data = self.tmp / "data"
        subprocess.run([*self.prefix, f"{self.bindir}/initdb", "-D", str(self.data), "-U", "postgres", "-A",
                        "trust", "-E", "UTF8", "--locale=C", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        self.start()
        subprocess.run([f"{self.bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "kansoku"], check=True)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `kansoku` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/kansoku"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        subprocess.run([*self.prefix, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l",
                        str(self.tmp / "server.log"), "-w", "-t", "30", "-o",
                        f"-h 127.0.0.1 -p {self.port} -k {self.tmp} -F -c max_connections=200", "start"],
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop the server (fast shutdown); data stays for a restart."""
        subprocess.run([*self.prefix, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                        "stop"], check=False, stdout=subprocess.DEVNULL)

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of the session's PostgreSQL database."""
    return postgres.url


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve `app` (lifespan included) on a free 127.0.0.1 port; yields the base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="session")
def serve_app() -> Callable[[Any], AbstractContextManager[str]]:
    """`with serve_app(app) as base_url:` runs the app on a real server for the block."""
    return served
