"""Fixtures for the demo: the app on a real server in a thread, and `kansoku demo` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn


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


class DemoProcess:
    """`kansoku demo` started in its own session, in a directory of its own, output in files."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_", "PROMETHEUS_"))}
        env.update(KANSOKU_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
        self.out, self.err = cwd / "demo.out", cwd / "demo.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([str(Path(sys.executable).with_name("kansoku")), "demo", *args], cwd=cwd,
                                         env=env, stdout=out, stderr=err, start_new_session=True)

    def stderr(self) -> str:
        """What the demo printed on stderr so far (banner, progress, summary)."""
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        """What the demo printed on stdout so far (the JSON log lines)."""
        return self.out.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, then wait for the exit code; SIGKILL of its session only if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[Callable[..., DemoProcess]]:
    """Start `kansoku demo ARGS` in tmp_path; stopped after the test whatever happened."""
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        started.append(DemoProcess(tmp_path, *args))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.stop()
