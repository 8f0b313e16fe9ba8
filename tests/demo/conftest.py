"""Fixtures for the demo: the app on a real server in a thread, and `kansoku demo` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


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
