"""Silences: stop notifications by rule, group, tag or text until a time.

Stored in `kansoku_silences` so every process (and the CLI) sees the same ones. The engine reads the
active ones at most every few seconds, so checking an event costs no query.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from kansoku.exceptions import ConfigError
from kansoku.store import write_transaction
from kansoku.store.tables import silences
from kansoku.typing import Clock

__all__ = ["Silence", "SilenceCache", "create_silence", "expire_silence", "list_silences"]


@dataclass(frozen=True)
class Silence:
    """One silence; every matcher that is set must match (rule, group, tag ``key=value``, text)."""

    id: int
    created_at: float
    ends_at: float
    rule: str | None
    group_key: str | None
    tag: str | None
    text: str | None
    comment: str
    created_by: str

    def matches(self, rule: str, group_key: str, title: str, tags: Mapping[str, Any]) -> bool:
        """Whether a notification of `rule` for this group (its title and tags) is silenced."""
        if self.rule is not None and self.rule != rule:
            return False
        if self.group_key is not None and self.group_key != group_key:
            return False
        if self.text is not None and self.text.lower() not in title.lower():
            return False
        if self.tag is not None:
            key, _, value = self.tag.partition("=")
            if key not in tags or (value and str(tags[key]) != value):
                return False
        return True

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def create_silence(
    engine: Engine, *, now: float, ends_at: float, rule: str | None = None, group_key: str | None = None,
    tag: str | None = None, text: str | None = None, comment: str = "", created_by: str = "",
) -> Silence:
    """Store a new silence; `ConfigError` when it has no matcher or ends in the past."""
    if not any((rule, group_key, tag, text)):
        raise ConfigError("a silence needs at least one of rule, group_key, tag (key=value) or text")
    if ends_at <= now:
        raise ConfigError("a silence must end in the future (ends_at or duration_minutes > 0)")
    values = {"created_at": now, "ends_at": ends_at, "rule": rule or None, "group_key": group_key or None,
              "tag": tag or None, "text": text or None, "comment": comment[:2000],
              "created_by": created_by[:128]}
    with write_transaction(engine) as conn:
        key = conn.execute(insert(silences).values(**values)).inserted_primary_key
    assert key is not None
    return Silence(id=int(key[0]), **values)  # type: ignore[arg-type]


def list_silences(engine: Engine, now: float, *, include_expired: bool = False) -> list[Silence]:
    """Silences, newest first (only active ones unless `include_expired`)."""
    query = select(silences).order_by(silences.c.id.desc())
    if not include_expired:
        query = query.where(silences.c.ends_at > now)
    with engine.connect() as conn:
        return [Silence(**row._mapping) for row in conn.execute(query)]


def expire_silence(engine: Engine, silence_id: int, now: float) -> bool:
    """End a silence now; False if there is no such active silence."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(silences).where(silences.c.id == silence_id, silences.c.ends_at > now).values(ends_at=now)
        )
    return bool(result.rowcount)


class SilenceCache:
    """The active silences, re-read from the store at most every `ttl` seconds."""

    def __init__(self, engine: Engine, clock: Clock, ttl: float = 5.0) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._active: list[Silence] = []

    def invalidate(self) -> None:
        """Re-read on the next check (after this process created or expired one)."""
        self._loaded_at = None

    def silenced(self, rule: str, group_key: str, title: str, tags: Mapping[str, Any], now: float) -> bool:
        """Whether an active silence covers this notification."""
        with self._lock:
            if self._loaded_at is None or now - self._loaded_at >= self.ttl or now < self._loaded_at:
                self._active = list_silences(self.engine, now)
                self._loaded_at = now
            active = self._active
        return any(s.ends_at > now and s.matches(rule, group_key, title, tags) for s in active)
