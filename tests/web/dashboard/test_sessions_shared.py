"""Sessions and CSRF keys live in the store: logout holds on every worker and after a restart."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_logout_holds_on_another_worker_and_after_a_restart(make_app: Any, seeded: Any) -> None:
    """A cookie logged out on worker A is refused by worker B and by a restarted process."""
    worker_a, worker_b = make_app(dashboard_token=seeded.TOKEN), make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(worker_a) as a, seeded.asgi_client(worker_b) as b:
        form = await a.get("/login")
        await a.post("/login", data={"csrf_token": _csrf(form.text), "token": seeded.TOKEN, "next": "/"})
        cookie = a.cookies["kansoku_session"]
        b.cookies.set("kansoku_session", cookie, domain="127.0.0.1", path="/kansoku")
        assert (await b.get("/errors")).status_code == 200  # the session works on both workers
        page = await a.get("/errors")
        assert (await a.post("/logout", data={"csrf_token": _csrf(page.text)})).status_code == 303
        assert (await b.get("/errors")).status_code == 303  # worker B: back to the login page
    restarted = make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(restarted) as c:
        c.cookies.set("kansoku_session", cookie, domain="127.0.0.1", path="/kansoku")
        assert (await c.get("/errors")).status_code == 303


async def test_loopback_csrf_key_is_shared_by_workers(make_app: Any, seeded: Any, engine: sa.Engine) -> None:
    """A form rendered by one worker posts to another (the key binding the token is the store's)."""
    worker_a, worker_b = make_app(), make_app()
    async with seeded.asgi_client(worker_a) as a, seeded.asgi_client(worker_b) as b:
        page = await a.get("/errors/1")
        b.cookies.set("kansoku_csrf", a.cookies["kansoku_csrf"], domain="127.0.0.1", path="/kansoku")
        response = await b.post("/errors/1/ignore", data={"csrf_token": _csrf(page.text)})
    assert response.status_code == 303
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM kansoku_error_groups WHERE id = 1")).scalar() == "ignored"
