"""docs/: generated parts are current, and the hand-written references cover what the code has."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import kansoku
from kansoku.alerts.rules import CHANNEL_TYPES, AlertRule, ChannelConfig
from kansoku.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# shared/ lies beside the checkout (on CI too); this is where the chapter's own text is.
CHAPTER = ROOT.parent / "shared" / "reference" / "chapter-8-monitoring-logging-debugging.md"
CHAPTER_NAMES = (
    "AdvancedDebugger", "AlertChannel", "AlertRule", "DataProcessor", "DebugContext", "ErrorCategory", "ErrorDetails",
    "ErrorSeverity", "ErrorTracker", "ExecutionStep", "LogCategory", "LogContext", "LogLevel", "LoggingMiddleware",
    "MemoryTracker", "MetricCategory", "MetricConfig", "MetricType", "MetricsCollector", "MetricsMiddleware",
    "OrderService", "PaymentService", "StructuredLogger", "TraceLevel", "UserService", "debug_trace", "log_api_call",
    "log_database_operation", "log_execution_time", "measure_performance", "memory_profile", "track_business_metric",
    "track_errors",
)
PAGES = ("index", "logging", "metrics", "tracing", "errors", "alerting", "dashboard", "cli", "deployment",
         "configuration", "alert-rules", "from-the-chapter")


def commands(group: click.Group, prefix: str = "kansoku") -> Iterator[tuple[str, click.Command]]:
    """Every (command path, command) of the CLI, groups included."""
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from commands(command, path)


def test_every_page_exists() -> None:
    """The index, one page per pillar, the CLI, deployment, configuration and chapter pages."""
    missing = [page for page in PAGES if not (DOCS / f"{page}.md").is_file()]
    assert missing == []


def test_configuration_reference_is_generated_and_current() -> None:
    """docs/configuration.md equals what scripts/gen_config_docs.py makes from Settings now."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_cli_page_names_every_command_and_option() -> None:
    """docs/cli.md mentions each command path and each of its long options."""
    text = (DOCS / "cli.md").read_text()
    for path, command in commands(cli):
        assert path in text, path
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert option in text, f"{path} {option}"


def test_alert_rule_reference_covers_every_field_and_channel() -> None:
    """docs/alert-rules.md names every rule key, every channel type and every channel key."""
    text = (DOCS / "alert-rules.md").read_text()
    for field in AlertRule.model_fields:
        assert f"`{field}`" in text, field
    for channel_type in CHANNEL_TYPES:
        assert f"`{channel_type}`" in text, channel_type
    for model in ChannelConfig.__origin__.__args__:  # type: ignore[attr-defined]
        for field in model.model_fields:
            if field != "type":
                assert f"`{field}`" in text, f"{model.__name__}.{field}"


def test_chapter_page_maps_every_class_and_decorator_of_the_chapter() -> None:
    """Each top-level class and decorator of the chapter's code appears in from-the-chapter.md."""
    text = (DOCS / "from-the-chapter.md").read_text()
    assert sorted(name for name in CHAPTER_NAMES if not re.search(rf"`@?{name}\b", text)) == []


def test_chapter_names_are_the_chapters_own() -> None:
    """CHAPTER_NAMES is every top-level class and function of the chapter (where the chapter is)."""
    if not CHAPTER.exists():
        pytest.skip("the chapter is not on this machine")
    chapter = CHAPTER.read_text()
    names = set(re.findall(r"^class (\w+)", chapter, re.M)) | set(re.findall(r"^def (\w+)", chapter, re.M))
    assert names - {"create_user_bad", "create_user_in_db"} == set(CHAPTER_NAMES)  # minus its "bad example"


def test_relative_links_point_at_files() -> None:
    """Every relative link in docs/*.md (and its #anchor's file) exists."""
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_make_demo_takes_a_port() -> None:
    """`make demo PORT=N` runs `kansoku demo --port N` (make's dry run: what the target would do)."""
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(["make", "-n", "-C", str(ROOT), "demo", "PORT=9123", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{venv}/bin/kansoku demo --port 9123" in done.stdout.splitlines()


# The chapter's names kansoku does not take over (another meaning under the same name would port
# silently wrong), with what the pitfalls section tells a porter to write instead (None: nothing).
NOT_ALIASED = {"measure_performance": "timed", "debug_trace": "traced", "log_api_call": None,
               "track_error": "capture_exception"}


def test_chapter_names_are_no_silent_aliases_and_the_pitfalls_name_their_replacement() -> None:
    """measure_performance, debug_trace, log_api_call and track_error are not kansoku names; the pitfalls
    section names each, and the kansoku function to use instead exists."""
    text = (DOCS / "from-the-chapter.md").read_text()
    pitfalls = text[text.index("## Porting pitfalls"):text.index("## What the sketch gets wrong")]
    for name, replacement in NOT_ALIASED.items():
        assert not hasattr(kansoku, name), f"kansoku.{name} would be an alias with other semantics"
        assert f"`kansoku.{name}`" in pitfalls or f"`@{name}(" in pitfalls or f"`{name}`" in pitfalls, name
        if replacement is not None:
            assert callable(getattr(kansoku, replacement)), replacement
            assert f"kansoku.{replacement}(" in pitfalls, f"{name}: the pitfalls do not name kansoku.{replacement}"
