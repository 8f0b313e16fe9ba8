"""Ids out of range: 404 on every route that takes one, in the JSON API and the dashboard, never 500."""

from __future__ import annotations

from typing import Any

import pytest

HUGE = "9" * 20  # past 2**63: the database driver cannot even bind it
ROUTES = [
    ("POST", f"/api/alerts/silences/{HUGE}/expire"),
    ("POST", f"/api/alerts/deliveries/{HUGE}/retry"),
    ("POST", f"/api/errors/{HUGE}/resolve"),
    ("GET", f"/api/errors/{HUGE}"),
    ("POST", f"/alerts/silences/{HUGE}/expire"),
    ("POST", f"/alerts/deliveries/{HUGE}/retry"),
    ("POST", f"/errors/{HUGE}/resolve"),
    ("GET", f"/errors/{HUGE}"),
    ("GET", f"/traces/{HUGE}"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_huge_ids_are_not_found(make_app: Any, seeded: Any, method: str, path: str) -> None:
    """A 20-digit id names nothing: 404 (or a page saying so), not an OverflowError's 500."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN),
                                  headers={"Authorization": f"Bearer {seeded.TOKEN}"}) as client:
        response = await client.request(method, path)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])
