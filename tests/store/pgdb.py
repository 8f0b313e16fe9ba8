"""Throwaway databases on the session's PostgreSQL server, one per test."""

from __future__ import annotations

import uuid

import psycopg


def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the session's server; its SQLAlchemy URL."""
    name = f"kt_{uuid.uuid4().hex[:12]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    """Drop a database made by `fresh_postgres_database` (connections are cut)."""
    base, name = url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
