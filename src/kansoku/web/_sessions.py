"""The auth middleware's shared state: revoked sessions and the loopback CSRF key.

In the store when the web app has one (every worker and every restart agree: see
`kansoku.store.sessions`), else in this process's memory. The key is read once per process; a
revocation is looked up on each request that carries a session cookie (a primary-key read, in a
thread so the event loop never waits on the database).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

__all__ = ["SessionState"]


class SessionState:
    """Revocations and keys of the dashboard's sessions (`engine` None: this process only)."""

    def __init__(self, engine: Engine | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._revoked: dict[str, float] = {}
        self._keys: dict[str, bytes] = {}

    async def is_revoked(self, sid: str) -> bool:
        """Whether `sid` was logged out, here or in any other worker sharing the store."""
        now = self.clock()
        if self.engine is None:
            return self._revoked.get(sid, 0.0) >= now
        from kansoku.store.sessions import is_revoked

        return await run_in_threadpool(is_revoked, self.engine, sid, now)

    async def revoke(self, sid: str, until: float) -> None:
        """Refuse `sid` until `until` (when its cookie would have expired anyway)."""
        now = self.clock()
        if self.engine is None:
            self._revoked = {s: t for s, t in self._revoked.items() if t > now}  # forget expired ones
            self._revoked[sid] = until
            return
        from kansoku.store.sessions import revoke

        await run_in_threadpool(revoke, self.engine, sid, until, now)

    async def key(self, name: str) -> bytes:
        """A random key shared by every process of the store (made on first use)."""
        found = self._keys.get(name)
        if found is None:
            if self.engine is None:
                found = secrets.token_bytes(32)
            else:
                from kansoku.store.sessions import auth_secret

                found = (await run_in_threadpool(auth_secret, self.engine, name, self.clock())).encode()
            self._keys[name] = found
        return found
