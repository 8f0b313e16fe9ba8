"""The CLI as a newcomer meets it: unsupported store URLs refused, read-only commands create no store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import clean_env

Kansoku = Callable[..., Any]  # the `kansoku` and `invoke` fixtures of conftest.py


def test_config_check_rejects_a_backend_kansoku_does_not_support(kansoku: Kansoku) -> None:
    """`config check` with a mysql:// URL: exit 3, says SQLite or PostgreSQL, the password masked."""
    result = kansoku("config", "check", env={"KANSOKU_DATABASE_URL": "mysql://app:my-secret@db/kansoku"})
    assert result.code == 3, result.stdout
    assert "KANSOKU_DATABASE_URL" in result.stderr
    assert "SQLite or PostgreSQL" in result.stderr
    assert "my-secret" not in result.stderr and "valid" not in result.stdout


@pytest.mark.parametrize("args", [("stats",), ("errors", "list"), ("errors", "show", "1"), ("errors", "resolve", "1"),
                                  ("alerts", "list"), ("alerts", "unsilence", "1"), ("monitors", "list"),
                                  ("monitors", "show", "backup")])
def test_read_only_commands_never_create_a_store(invoke: Kansoku, tmp_path: Path, args: tuple[str, ...]) -> None:
    """A mistyped SQLite path: exit 4 naming the missing file; no directory, no empty store made."""
    missing = tmp_path / "nonexistent" / "dir" / "k.db"
    result = invoke(*args, env={"KANSOKU_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.code == 4, result.stdout
    assert f"no store at {missing}" in result.stderr
    assert "KANSOKU_DATABASE_URL" in result.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_db_status_of_a_missing_store_creates_nothing(invoke: Kansoku, tmp_path: Path) -> None:
    """`db status` on a store that does not exist: revision none, exit 4, and still no file."""
    missing = tmp_path / "nowhere" / "k.db"
    result = invoke("db", "status", env={"KANSOKU_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.code == 4
    assert "revision none" in result.stdout
    assert not (tmp_path / "nowhere").exists()


def test_demo_without_fastapi_names_the_extra(tmp_path: Path) -> None:
    """`pip install kansoku` (no FastAPI) then `kansoku demo`: exit 1 naming kansoku[fastapi], no traceback.

    FastAPI is installed here for the other tests; the interpreter is told it is absent
    (`sys.modules["fastapi"] = None` makes every import of it fail, as a missing package does).
    """
    script = ("import sys\nsys.modules['fastapi'] = None\nsys.argv = ['kansoku', 'demo']\n"
              "from kansoku.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "pip install 'kansoku[fastapi]'" in done.stderr
    assert "Traceback" not in done.stderr
