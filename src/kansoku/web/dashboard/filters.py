"""The errors list's query string, validated, and what it asks of `store.queries.list_groups`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kansoku.store.queries import CATEGORIES, SEVERITIES, SORTS, STATUSES

__all__ = ["ErrorFilters"]


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else ""


@dataclass(frozen=True)
class ErrorFilters:
    """The errors list's filters: unknown values fall back to the defaults instead of failing."""

    status: str = "unresolved"
    severity: str = ""
    category: str = ""
    service: str = ""
    environment: str = ""
    q: str = ""
    sort: str = "last_seen"
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> ErrorFilters:
        """Build from a query-string mapping (Starlette's QueryParams or a dict)."""
        status = str(params.get("status", "unresolved"))
        sort = str(params.get("sort", "last_seen"))
        try:
            page = max(1, min(int(params.get("page", 1)), 100_000))
        except ValueError:
            page = 1
        return cls(
            status=status if status in (*STATUSES, "") else "unresolved",
            severity=_one_of(str(params.get("severity", "")), SEVERITIES),
            category=_one_of(str(params.get("category", "")), CATEGORIES),
            service=str(params.get("service", ""))[:128],
            environment=str(params.get("environment", ""))[:64],
            q=str(params.get("q", "")).strip()[:200],
            sort=sort if sort in SORTS else "last_seen",
            page=page,
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """The query-string items of these filters with `changes` applied (for links)."""
        new = replace(self, **changes)
        items = {"status": new.status}  # always: an empty status means "any", not the default
        for name in ("severity", "category", "service", "environment", "q"):
            if getattr(new, name):
                items[name] = getattr(new, name)
        if new.sort != "last_seen":
            items["sort"] = new.sort
        if new.page > 1:
            items["page"] = str(new.page)
        return items

    def arguments(self, page_size: int) -> dict[str, Any]:
        """The keywords of `store.queries.list_groups` for this page of the list (newest first)."""
        return {"status": self.status, "severity": self.severity, "category": self.category,
                "service": self.service, "environment": self.environment, "text": self.q, "sort": self.sort,
                "limit": page_size, "offset": (self.page - 1) * page_size}
