"""`kansoku projects create|list|rotate-key|delete` over a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Kansoku = Callable[..., Any]


def test_create_prints_dsn_and_otlp_config(invoke: Kansoku) -> None:
    """create --json gives dsn, otlp_endpoint and otlp_headers built from KANSOKU_PUBLIC_URL."""
    result = invoke("projects", "create", "checkout", "--json", env={"KANSOKU_PUBLIC_URL": "http://ingest.test:9000"})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    key = data["key"]
    assert data["dsn"] == f"http://{key}@ingest.test:9000/{data['id']}"
    assert data["otlp_endpoint"] == "http://ingest.test:9000"
    assert data["otlp_headers"] == f"authorization=Bearer%20{key}"
    text = invoke("projects", "list")
    assert text.code == 0 and f"http://{key}@127.0.0.1:8000/{data['id']}" in text.stdout


def test_rotate_and_delete(invoke: Kansoku) -> None:
    """rotate-key prints a new key; delete removes the project; unknown projects exit 5."""
    first = json.loads(invoke("projects", "create", "web", "--json").stdout)
    rotated = json.loads(invoke("projects", "rotate-key", "web", "--json").stdout)
    assert rotated["id"] == first["id"] and rotated["key"] != first["key"]
    assert invoke("projects", "delete", "web", "--yes").code == 0
    assert json.loads(invoke("projects", "list", "--json").stdout) == []
    missing = invoke("projects", "rotate-key", "web")
    assert missing.code == 5 and "no project 'web'" in missing.stderr


def test_duplicate_name_is_a_usage_error(invoke: Kansoku) -> None:
    """Creating a project whose name is taken exits 2 with the reason."""
    assert invoke("projects", "create", "api").code == 0
    again = invoke("projects", "create", "api")
    assert again.code == 2 and "exists already" in again.stderr


def test_list_of_a_missing_store_creates_nothing(invoke: Kansoku, tmp_path: Path) -> None:
    """`projects list` on a store file that does not exist exits 4 and creates no file."""
    result = invoke("projects", "list")
    assert result.code == 4 and "no store at" in result.stderr
    assert not (tmp_path / "kansoku.db").exists()
