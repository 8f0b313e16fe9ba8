"""Error snapshots: delivered to the error tracker's capture, attached to the exception, written as
rotated JSON files, and redacted everywhere."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from kansoku import debug, tracing
from kansoku.debug import Debugger
from kansoku.settings import load_settings
from kansoku.tracing import traced

from .conftest import Clock

SECRETS = ("hunter2", "4111 1111 1111 1111", "sk_live_abcdefghijklmnop", "ann@example.com")


def charge(card_number: str, amount: int, note: str) -> None:
    """An in-app function whose locals hold secrets when it fails."""
    stripe_key = "sk_live_abcdefghijklmnop"
    password = "hunter2"
    customer = {"email": "ann@example.com", "card": card_number}
    raise RuntimeError(f"declined {amount} for {customer['email']} using {stripe_key} password={password}")


def test_snapshot_goes_to_capture_with_frames_memory_and_thread(clock: Clock) -> None:
    """capture(exc, snapshot=..., mechanism='traced') receives the whole redacted snapshot."""
    calls: list[tuple[BaseException, dict[str, Any], str]] = []

    def capture(exc: BaseException, /, *, snapshot: dict[str, Any], mechanism: str) -> object:
        calls.append((exc, snapshot, mechanism))
        return "evt-1"

    tracing.configure(load_settings(trace_level="VERBOSE"), None, debugger=Debugger(clock=clock), capture=capture)

    @traced(name="payments.charge")
    def pay(card_number: str, amount: int) -> None:
        charge(card_number, amount, note="first try")

    with pytest.raises(RuntimeError) as info:
        pay("4111 1111 1111 1111", 30)
    [(exc, snapshot, mechanism)] = calls
    assert (exc, mechanism) == (info.value, "traced")
    assert debug.snapshot_of(info.value) is snapshot
    assert snapshot["function"] == "payments.charge" and snapshot["level"] == "VERBOSE"
    assert snapshot["timestamp"] == clock.now
    assert snapshot["exception"]["type"] == "RuntimeError"
    assert snapshot["arguments"] == {"card_number": "[REDACTED]", "amount": 30}
    assert [f["function"] for f in snapshot["frames"]][-2:] == [
        "test_snapshot_goes_to_capture_with_frames_memory_and_thread.<locals>.pay", "charge"]
    innermost = snapshot["frames"][-1]
    assert innermost["in_app"] and innermost["module"] == __name__ and innermost["lineno"] > 0
    assert innermost["locals"]["stripe_key"] == "[REDACTED]"
    assert innermost["locals"]["password"] == "[REDACTED]"
    assert innermost["locals"]["customer"] == {"email": "[REDACTED EMAIL]", "card": "[REDACTED CARD]"}
    assert innermost["locals"]["amount"] == 30
    assert snapshot["memory"]["rss"] > 0
    assert snapshot["thread"] == {"id": threading.get_ident(), "name": threading.current_thread().name}
    assert "trace_id" not in snapshot  # no span anywhere: nothing to link
    assert [secret for secret in SECRETS if secret in json.dumps(snapshot)] == []


def test_snapshot_files_are_written_rotated_and_redacted(tmp_path: Path, clock: Clock) -> None:
    """With snapshot_dir, each snapshot is a JSON file; only the newest snapshot_keep remain."""
    settings = load_settings(snapshot_dir=tmp_path / "snaps", snapshot_keep=3, trace_level="VERBOSE")
    debugger = Debugger(settings, clock=clock)
    tracing.configure(settings, None, debugger=debugger)

    @traced(name="payments.charge")
    def pay(attempt: int) -> None:
        charge("4111 1111 1111 1111", attempt, note="retry")

    for attempt in range(5):
        clock.now += 1
        with pytest.raises(RuntimeError):
            pay(attempt)
    assert debugger.flush(5)
    files = sorted((tmp_path / "snaps").glob("*.json"))
    assert len(files) == 3
    kept = [json.loads(path.read_text()) for path in files]
    assert [snap["arguments"]["attempt"] for snap in kept] == [2, 3, 4]
    text = "".join(path.read_text() for path in files)
    assert not any(secret in text for secret in SECRETS)
    assert list((tmp_path / "snaps").glob("*.tmp")) == []
    debugger.close()


def test_broken_capture_never_hides_the_users_exception(clock: Clock) -> None:
    """A capture callback that fails is an internal error: the user's exception still propagates."""
    from kansoku import _safety

    def capture(exc: BaseException, /, *, snapshot: dict[str, Any], mechanism: str) -> object:
        raise OSError("tracker down")

    tracing.configure(None, None, debugger=Debugger(clock=clock), capture=capture)

    @traced(name="op")
    def op() -> None:
        raise ValueError("the user's error")

    _safety.set_strict(False)
    try:
        with pytest.raises(ValueError, match="the user's error"):
            op()
    finally:
        _safety.set_strict(True)
    assert _safety.internal_error_count("debug.capture") >= 1
