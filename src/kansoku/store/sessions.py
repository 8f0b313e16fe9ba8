"""The dashboard's shared session state: revoked session ids and per-store random keys.

Kept in the store so that every worker and every restart sees the same: a session logged out on
one worker is refused by all of them until its cookie would have expired anyway, and the key that
binds loopback mode's CSRF tokens is the same in every process. Both are small tables read by
primary key.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from kansoku.store import write_transaction
from kansoku.store.tables import auth_secrets, revoked_sessions

__all__ = ["auth_secret", "is_revoked", "revoke"]


def revoke(engine: Engine, sid: str, expires_at: float, now: float) -> None:
    """Refuse session `sid` from now until `expires_at`; forget revocations that have expired."""
    with write_transaction(engine) as conn:
        conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < now))
        if conn.execute(select(revoked_sessions.c.sid).where(revoked_sessions.c.sid == sid)).first() is None:
            conn.execute(insert(revoked_sessions).values(sid=sid, expires_at=expires_at))


def is_revoked(engine: Engine, sid: str, now: float) -> bool:
    """Whether session `sid` was logged out (and its revocation has not expired)."""
    with engine.connect() as conn:
        found = conn.execute(select(revoked_sessions.c.expires_at).where(revoked_sessions.c.sid == sid)).scalar()
    return found is not None and float(found) >= now


def auth_secret(engine: Engine, name: str, now: float) -> str:
    """The store's random key called `name`, made on first use (the first process to ask wins)."""
    query = select(auth_secrets.c.value).where(auth_secrets.c.name == name)
    with engine.connect() as conn:
        found = conn.execute(query).scalar()
    if found is not None:
        return str(found)
    try:
        with write_transaction(engine) as conn:
            conn.execute(insert(auth_secrets).values(name=name, value=secrets.token_urlsafe(48), created_at=now))
    except IntegrityError:  # another worker made it first: read theirs
        pass
    with engine.connect() as conn:
        return str(conn.execute(query).scalar_one())
