"""Who is sending: project keys from the request, cached lookups, and per-key rate limits.

A key is looked up in the store at most once every `ttl` seconds per process (so a rotated or
deleted key is refused within `ttl`, 5 s by default); unknown keys are cached too, so a sender
hammering with a bad key costs no query per request. Rate limits are token buckets per key that
refill `per_minute / 60` tokens a second up to a minute's worth.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from kansoku.ingest.body import IngestError
from kansoku.store.projects import Project

__all__ = ["KeyCache", "RateLimiter", "bearer_key", "sentry_key"]

MAX_CACHED: Final = 10_000


def sentry_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The DSN public key of a Sentry request: X-Sentry-Auth (or Authorization: Sentry ...), else
    the `sentry_key` query parameter (what browser and Node SDKs use)."""
    for name in ("x-sentry-auth", "authorization"):
        value = headers.get(name, "")
        if value[:7].lower() == "sentry ":
            for item in value[7:].split(","):
                key, _, val = item.strip().partition("=")
                if key.strip() == "sentry_key":
                    return val.strip() or None
    return query.get("sentry_key") or None


def bearer_key(headers: Mapping[str, str]) -> str | None:
    """The project key of an OTLP request: `Authorization: Bearer KEY`, else `X-Kansoku-Key: KEY`."""
    value = headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return headers.get("x-kansoku-key", "").strip() or None


class KeyCache:
    """Key -> Project (or None) through `lookup`, remembered for `ttl` seconds."""

    def __init__(self, lookup: Callable[[str], Project | None], *, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Project | None]] = {}

    def cached(self, key: str) -> tuple[bool, Project | None]:
        """(found in the cache and fresh, the project) - no I/O."""
        entry = self._cache.get(key)
        if entry is None or self.clock() - entry[0] > self.ttl:
            return False, None
        return True, entry[1]

    def resolve(self, key: str) -> Project | None:
        """The project of `key` (a store query when not cached); None: unknown or revoked."""
        hit, project = self.cached(key)
        if hit:
            return project
        project = self.lookup(key)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (self.clock(), project)
        return project


class RateLimiter:
    """Token buckets per key: `take(key, n, per_minute)` or IngestError 429 with Retry-After."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, n: int, per_minute: int, *, sentry: bool = False) -> None:
        """Spend `n` tokens of `key`'s bucket (capacity `per_minute`); 429 when there are not enough.

        A request of more than a minute's worth is let through when the bucket is full, so one
        big batch is never refused forever.
        """
        if per_minute <= 0 or n <= 0:
            return
        rate = per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            need = min(float(n), float(per_minute))
            if tokens >= need:
                self._buckets[key] = (tokens - need, now)
                if len(self._buckets) > MAX_CACHED:
                    self._buckets.clear()
                return
            self._buckets[key] = (tokens, now)
        retry = max(1, math.ceil((need - tokens) / rate))
        headers = {"Retry-After": str(retry)}
        if sentry:  # the Sentry SDKs' own header: retry_after:categories:scope (no categories: all)
            headers["X-Sentry-Rate-Limits"] = f"{retry}::key"
        raise IngestError(429, f"rate limit of {per_minute} per minute reached for this key; "
                          f"retry in {retry} s", headers)
