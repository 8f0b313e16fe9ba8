"""Projects and keys of a kansoku server, in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from kansoku.store import Store
from kansoku.store.projects import (
    ProjectError,
    authenticate,
    create_project,
    delete_project,
    get_project,
    list_projects,
    rotate_key,
    sender_config,
)


def test_create_then_authenticate(store: Store) -> None:
    """A new project's key authenticates as that project; an unknown key does not."""
    project = create_project(store.engine, "checkout", rate_limit=600, clock=lambda: 100.0)
    assert len(project.key) == 32
    assert authenticate(store.engine, project.key) == project
    assert authenticate(store.engine, "0" * 32) is None
    assert list_projects(store.engine) == [project]
    assert get_project(store.engine, "checkout") == get_project(store.engine, project.id) == project


def test_rotate_revokes_the_old_key(store: Store) -> None:
    """After rotate-key the old key is refused and the new one accepted."""
    old = create_project(store.engine, "web")
    new = rotate_key(store.engine, "web")
    assert new.key != old.key
    assert authenticate(store.engine, old.key) is None
    assert authenticate(store.engine, new.key) == new
    assert list_projects(store.engine) == [new]


def test_names_are_unique_and_delete_removes_keys(store: Store) -> None:
    """A second project of the same name is refused; a deleted project's key no longer works."""
    project = create_project(store.engine, "api")
    with pytest.raises(ProjectError, match="exists already"):
        create_project(store.engine, "api")
    delete_project(store.engine, project.id)
    assert authenticate(store.engine, project.key) is None
    with pytest.raises(ProjectError, match="no project"):
        get_project(store.engine, "api")


def test_sender_config() -> None:
    """The DSN, OTLP endpoint and OTEL_EXPORTER_OTLP_HEADERS value of a project."""
    from kansoku.store.projects import Project

    config = sender_config(Project(7, "web", "ab" * 16, 0.0), "https://kansoku.example.com/")
    assert config == {"dsn": f"https://{'ab' * 16}@kansoku.example.com/7",
                      "otlp_endpoint": "https://kansoku.example.com",
                      "otlp_headers": f"authorization=Bearer%20{'ab' * 16}"}
    with pytest.raises(ProjectError, match="public URL"):
        sender_config(Project(7, "web", "k", 0.0), "kansoku.example.com")
