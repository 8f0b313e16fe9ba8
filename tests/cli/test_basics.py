"""The `kansoku` script: help with examples everywhere, version, usage errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
import pytest

from kansoku._version import __version__
from kansoku.cli import cli

Kansoku = Callable[..., Any]  # the `kansoku` fixture of conftest.py


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command of the CLI, as argv."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


LEAVES = sorted(command_paths(cli))


def test_help_lists_every_command_and_the_exit_codes(kansoku: Kansoku) -> None:
    """`kansoku --help`: every command, where to start, and what each exit code means."""
    result = kansoku("--help")
    assert result.code == 0
    for name in cli.commands:
        assert name in result.stdout
    for code in ("0  success", "2  bad arguments", "3  invalid configuration", "4  the store", "5  not found"):
        assert code in result.stdout


def test_every_command_has_help_with_examples() -> None:
    """Each leaf command's help has an Examples section naming the command itself."""
    for path in LEAVES:
        command: Any = cli
        for name in path:
            command = command.commands[name]
        text = command.help or ""
        assert "Examples:" in text, path
        assert f"kansoku {' '.join(path)}" in text, path


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_help_of_each_command_runs(kansoku: Kansoku, path: tuple[str, ...]) -> None:
    """`kansoku ... --help` exits 0 for every command, through the installed script."""
    result = kansoku(*path, "--help")
    assert result.code == 0, result.stderr
    assert "Usage: kansoku" in result.stdout


def test_version(kansoku: Kansoku) -> None:
    """`kansoku --version` prints the package version."""
    result = kansoku("--version")
    assert result.code == 0
    assert __version__ in result.stdout


def test_unknown_command_is_a_usage_error(kansoku: Kansoku) -> None:
    """A misspelt command: exit 2, and click's "No such command" with the name."""
    result = kansoku("eror", "list")
    assert result.code == 2
    assert "No such command 'eror'" in result.stderr


def test_bad_option_value_is_a_usage_error(kansoku: Kansoku) -> None:
    """An out-of-range port: exit 2 naming the option and the range."""
    result = kansoku("demo", "--port", "70000")
    assert result.code == 2
    assert "--port" in result.stderr and "65535" in result.stderr


def test_unknown_option_is_a_usage_error(kansoku: Kansoku) -> None:
    """An option a command does not have: exit 2."""
    result = kansoku("stats", "--days", "3")
    assert result.code == 2
    assert "No such option '--days'" in result.stderr


def test_help_imports_nothing_heavy() -> None:
    """Building the CLI imports click and the standard library only: `kansoku --help` stays fast."""
    code = ("import sys; from kansoku.cli import cli; "
            "heavy = ('sqlalchemy', 'fastapi', 'starlette', 'uvicorn', 'opentelemetry', 'prometheus_client', "
            "'pydantic', 'structlog', 'httpx', 'alembic'); "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
