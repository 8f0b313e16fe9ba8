"""Helpers for CLI tests: the installed `kansoku` script in subprocesses, with a clean environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click.testing
import httpx
import pytest

KANSOKU = Path(sys.executable).with_name("kansoku")
_FOREIGN = ("KANSOKU_", "_KANSOKU_", "OTEL_", "PROMETHEUS_MULTIPROC_DIR")


def clean_env(directory: Path, **extra: str) -> dict[str, str]:
    """The environment without any kansoku/OTel setting of the caller, a store inside `directory`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env.update(KANSOKU_DATABASE_URL=f"sqlite:///{directory / 'kansoku.db'}", KANSOKU_LOG_FORMAT="json",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass
class Result:
    """What one `kansoku ...` run returned."""

    code: int
    stdout: str
    stderr: str


Kansoku = Callable[..., Result]


@pytest.fixture
def kansoku(tmp_path: Path) -> Kansoku:
    """Run `kansoku ARGS` in tmp_path with a clean environment (plus `env`); returns a Result."""

    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run([str(KANSOKU), *args], cwd=tmp_path, env=clean_env(tmp_path, **(env or {})),
                              capture_output=True, text=True, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return call


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kansoku:
    """Run `kansoku ARGS` in this process (click's runner): the same code as the script, ten times
    faster; for the tests that are about a command's output rather than the entry point.
    monkeypatch.chdir: the working directory is process state that settings read (./kansoku.toml)."""
    from kansoku.cli import cli
    from kansoku.logs import unbridge_stdlib

    monkeypatch.chdir(tmp_path)
    unbridge_stdlib()  # as in a fresh `kansoku` process: library logs (alembic's) are not printed
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_FOREIGN)}

    def call(*args: str, env: dict[str, str] | None = None) -> Result:
        full = {**unset, **clean_env(tmp_path, **(env or {}))}
        result = click.testing.CliRunner().invoke(cli, list(args), env=full, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return call


class Served:
    """A long-running `kansoku` command (run, demo, dashboard) started in its own session."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.out_path, self.err_path = cwd / "served.out", cwd / "served.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen([str(KANSOKU), *args], cwd=cwd, env=env, stdout=out, stderr=err,
                                         start_new_session=True)

    @property
    def stdout(self) -> str:
        """Everything written to stdout so far."""
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        """Everything written to stderr so far."""
        return self.err_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 30.0) -> httpx.Response:
        """Poll `url` until it answers; fail with the process output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")
            try:
                return httpx.get(url, timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"{url} did not answer in {timeout}s\nstderr:\n{self.stderr[-4000:]}")

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C (SIGINT to the process) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Last resort after a failed test: end the session this test started."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `kansoku ARGS` in tmp_path (clean environment plus `env`); stopped after the test."""
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        served = Served(list(args), tmp_path, clean_env(tmp_path, **(env or {})))
        started.append(served)
        return served

    yield start
    for served in started:
        try:
            served.interrupt(timeout=20)
        except subprocess.TimeoutExpired:
            served.kill()
