"""The dashboard's writes, through the functions of the parts that own each change.

Group status goes through `kansoku.store.queries.set_status` (the errors part decides what
resolving means) and then tells the alert engine, which sends resolutions where alerts fired.
Silences are `kansoku.alerts.silences`; after a change the engine's silence cache is refreshed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from kansoku.store.queries import set_status
from kansoku.typing import Clock

__all__ = ["ACTIONS", "add_silence", "expire_silence", "set_group_status", "slack_resolver"]

ACTIONS = {"resolve": "resolved", "ignore": "ignored", "reopen": "unresolved"}


def set_group_status(
    engine: Engine, group_ids: Sequence[int | str], action: str, now: float, alerts: Any = None
) -> int:
    """Resolve, ignore or reopen groups (by id, event id or group key); how many changed."""
    changed = 0
    for ident in group_ids:
        group = set_status(engine, ident, ACTIONS[action], now=now)
        if group is None:
            continue
        changed += 1
        if action == "resolve" and alerts is not None:
            alerts.on_resolve(group)
    return changed


def add_silence(
    engine: Engine, alerts: Any, *, now: float, minutes: float, rule: str = "", group_key: str = "",
    tag: str = "", text: str = "", comment: str = "", created_by: str = "",
) -> int:
    """Silence matching notifications from now for `minutes`; returns the silence id."""
    from kansoku.alerts.silences import create_silence

    silence = create_silence(engine, now=now, ends_at=now + minutes * 60.0, rule=rule or None,
                             group_key=group_key or None, tag=tag or None, text=text or None,
                             comment=comment, created_by=created_by)
    _refresh(alerts)
    return silence.id


def expire_silence(engine: Engine, alerts: Any, silence_id: int, now: float) -> bool:
    """End an active silence now; False if it did not exist or had already ended."""
    from kansoku.alerts.silences import expire_silence as expire

    done = expire(engine, silence_id, now)
    _refresh(alerts)
    return done


def _refresh(alerts: Any) -> None:
    cache = getattr(alerts, "silences", None)
    if cache is not None:
        cache.invalidate()


def slack_resolver(engine: Engine, alerts: Any, clock: Clock) -> Callable[[str, str], bool]:
    """`resolve(group_key, user)` for the Slack actions route ("Mark as resolved"): False when
    there is no such group."""
    def resolve(group_key: str, user: str) -> bool:
        return set_group_status(engine, [group_key], "resolve", clock(), alerts) > 0

    return resolve
