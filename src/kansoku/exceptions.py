"""Exceptions, factored out so that every module can raise them without import loops."""

from __future__ import annotations

__all__ = ["ConfigError", "KansokuError", "MetricDefinitionError", "ServerErrorResponse", "StoreError"]


class KansokuError(Exception):
    """Base class of every error kansoku raises on purpose."""


class ConfigError(KansokuError, ValueError):
    """A setting, environment variable or configuration file entry is invalid.

    The message names the variable or key, the value, and what is allowed, so that it can be
    printed to the user as it is.
    """


class MetricDefinitionError(KansokuError, ValueError):
    """A metric name was registered again with another type, help or label names."""


class StoreError(KansokuError):
    """The store (SQLite or PostgreSQL) could not be reached or written."""


class ServerErrorResponse(KansokuError):
    """Stands for a 5xx response that the app answered without raising (a framework's error page,
    a failed upstream): kansoku records it as an error event grouped by method, route and status.
    It is never raised."""

    status_code: int = 500
