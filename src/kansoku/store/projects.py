"""Projects of a kansoku server and their keys: create, list, rotate a key, delete, authenticate.

A project is what a Sentry DSN and an OTLP token point at. Its key is the DSN's public key and
the OTLP bearer token at once (one secret to hand out per project). `rotate_key` revokes the
project's keys and makes a new one: a sender still using an old key gets 401 from then on.
Records ingested into a project carry its name (`project` column of groups and spans).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from kansoku.store import write_transaction
from kansoku.store.tables import project_keys, projects

__all__ = [
    "Project",
    "ProjectError",
    "authenticate",
    "create_project",
    "delete_project",
    "get_project",
    "list_projects",
    "rotate_key",
    "sender_config",
]

MAX_NAME: Final = 128
_P = projects.c
_K = project_keys.c


class ProjectError(ValueError):
    """A project operation that cannot be done (name taken, no such project); the message says why."""


@dataclass(frozen=True)
class Project:
    """A project and its current (not revoked) key."""

    id: int
    name: str
    key: str
    created_at: float
    rate_limit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"id": self.id, "name": self.name, "key": self.key, "created_at": self.created_at,
                "rate_limit": self.rate_limit}


def new_key() -> str:
    """A fresh key: 32 hex digits, like a Sentry public key."""
    return secrets.token_hex(16)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ProjectError(f"project name must be 1-{MAX_NAME} printable characters, got {name!r}")
    return name


def create_project(engine: Engine, name: str, *, rate_limit: int | None = None,
                   clock: Any = time.time) -> Project:
    """Create the project `name` with a new key; ProjectError if the name is taken."""
    name = _check_name(name)
    if rate_limit is not None and rate_limit < 1:
        raise ProjectError(f"rate limit must be at least 1 event per minute, got {rate_limit}")
    now, key = clock(), new_key()
    try:
        with write_transaction(engine) as conn:
            project_id = conn.execute(projects.insert().values(name=name, created_at=now, rate_limit=rate_limit)
                                      .returning(_P.id)).scalar_one()
            conn.execute(project_keys.insert().values(key=key, project_id=project_id, created_at=now))
    except IntegrityError:
        raise ProjectError(f"a project named {name!r} exists already (see `kansoku projects list`)") from None
    return Project(project_id, name, key, now, rate_limit)


def _current(engine: Engine, where: Any) -> list[Project]:
    statement = (select(_P.id, _P.name, _P.created_at, _P.rate_limit, _K.key)
                 .join(project_keys, (_K.project_id == _P.id) & _K.revoked_at.is_(None), isouter=True)
                 .where(where).order_by(_P.id, _K.created_at.desc()))
    with engine.connect() as conn:
        found: dict[int, Project] = {}
        for row in conn.execute(statement):
            if row.id not in found:
                found[row.id] = Project(row.id, row.name, row.key or "", row.created_at, row.rate_limit)
    return list(found.values())


def list_projects(engine: Engine) -> list[Project]:
    """Every project with its current key, oldest first."""
    return _current(engine, True)


def get_project(engine: Engine, ident: str | int) -> Project:
    """The project with this id or name; ProjectError if there is none."""
    text = str(ident).strip()
    where = (_P.id == int(text)) | (_P.name == text) if text.isdigit() else _P.name == text
    found = _current(engine, where)
    if not found:
        raise ProjectError(f"no project {text!r} (see `kansoku projects list`)")
    return found[0]


def rotate_key(engine: Engine, ident: str | int, *, clock: Any = time.time) -> Project:
    """Revoke the project's keys and give it a new one; the project with the new key."""
    project = get_project(engine, ident)
    now, key = clock(), new_key()
    with write_transaction(engine) as conn:
        conn.execute(update(project_keys).where((_K.project_id == project.id) & _K.revoked_at.is_(None))
                     .values(revoked_at=now))
        conn.execute(project_keys.insert().values(key=key, project_id=project.id, created_at=now))
    return Project(project.id, project.name, key, project.created_at, project.rate_limit)


def delete_project(engine: Engine, ident: str | int) -> Project:
    """Delete the project and its keys (what was ingested stays until retention); the project."""
    project = get_project(engine, ident)
    with write_transaction(engine) as conn:
        conn.execute(delete(project_keys).where(_K.project_id == project.id))
        conn.execute(delete(projects).where(_P.id == project.id))
    return project


def authenticate(engine: Engine, key: str) -> Project | None:
    """The project whose current key is `key`; None for an unknown or revoked key."""
    if not key or len(key) > 64:
        return None
    statement = (select(_P.id, _P.name, _P.created_at, _P.rate_limit)
                 .join(project_keys, _K.project_id == _P.id)
                 .where((_K.key == key) & _K.revoked_at.is_(None)))
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    if row is None:
        return None
    return Project(row.id, row.name, key, row.created_at, row.rate_limit)


def sender_config(project: Project, public_url: str) -> dict[str, str]:
    """What a sender needs: the Sentry DSN, the OTLP endpoint and its headers.

    `otlp_headers` is in OTEL_EXPORTER_OTLP_HEADERS form (comma-separated `key=value`, values
    percent-encoded as the OpenTelemetry specification says).
    """
    parts = urlsplit(public_url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProjectError(f"the server's public URL must be http(s)://host[:port], got {public_url!r}")
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return {
        "dsn": f"{parts.scheme}://{project.key}@{parts.netloc}{parts.path}/{project.id}",
        "otlp_endpoint": base,
        "otlp_headers": "authorization=" + quote(f"Bearer {project.key}", safe=""),
    }
