"""Real servers for the tests: uvicorn serving `served_app` in subprocesses, and Prometheus."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    """Poll `url` until it answers; fail with the process output if it exits or never answers."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {_output(process)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {deadline_s}s")


def _output(process: subprocess.Popen[bytes]) -> str:
    return "" if process.stdout is None else process.stdout.read().decode(errors="replace")[-4000:]


@contextlib.contextmanager
def uvicorn(*, workers: int = 1, env: dict[str, str] | None = None
            ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m uvicorn served_app:app` on a free port; yields (base URL, process); stops it by pid."""
    port = free_port()
    # The server appends to a file the test reads by its own handle: a shared file offset would
    # let the server's next write land where a reader had just sought to.
    with tempfile.TemporaryDirectory() as directory, open(Path(directory) / "server.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "served_app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "KANSOKU_LOG_FORMAT": "json", **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT)
        process.log_path = Path(log.name)  # type: ignore[attr-defined]
        try:
            wait_http(f"http://127.0.0.1:{port}/health", process)
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def server_output(process: subprocess.Popen[bytes]) -> str:
    """What the server printed so far (stdout and stderr)."""
    path: Path = process.log_path  # type: ignore[attr-defined]
    return path.read_bytes().decode(errors="replace")
