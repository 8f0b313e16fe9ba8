"""CSRF in Chromium: a page on another port of 127.0.0.1 cannot change anything, in either mode.

The attacker's server sets the CSRF cookie itself (cookies know no ports, so a response from
127.0.0.1:X sets one for 127.0.0.1:Y too), then its page posts a form that carries the same value:
the bare double-submit check passed that. The Origin / Sec-Fetch-Site check refuses it; kansoku's own forms still work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.routing import Mount

from kansoku.store import tables as t

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FORGED = "attacker-chosen-csrf-value-0123456789"


def _attacker_page(target: str) -> bytes:
    return f"""<!doctype html><html><body>
<form id="f" method="POST" action="{target}"><input name="csrf_token" value="{FORGED}"></form>
<script>document.getElementById("f").submit();</script></body></html>""".encode()


@pytest.fixture
def attacker() -> Iterator[tuple[str, list[str]]]:
    """A page server on another port of 127.0.0.1; `targets[0]` is where its form posts."""
    targets: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _attacker_page(targets[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            # Cookies know no ports: this one replaces the dashboard's own CSRF cookie.
            self.send_header("Set-Cookie", f"kansoku_csrf={FORGED}; Path=/kansoku; HttpOnly; SameSite=Strict")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", targets
    server.shutdown()
    thread.join()
    server.server_close()


def _status(engine: sa.Engine, group_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(t.error_groups.c.status).where(t.error_groups.c.id == group_id)).scalar())


@pytest.mark.parametrize("mode", ["loopback", "token"])
def test_a_cross_port_page_changes_nothing(page: Page, tmp_path: Path, seeded: Any, mode: str,
                                           attacker: tuple[str, list[str]]) -> None:
    """The attacker page's forged post is refused (403) and the group keeps its state; the
    dashboard's own button still works afterwards."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'kansoku.db'}")
    seeded.seed_store(engine)
    overrides = {"dashboard_token": seeded.TOKEN} if mode == "token" else {}
    web = seeded.build_web_app(seeded.make_runtime(seeded.make_settings(tmp_path, **overrides), engine),
                               clock=lambda: seeded.NOW)
    with seeded.ServerThread(Starlette(routes=[Mount("/kansoku", app=web)])) as running:
        base = f"http://127.0.0.1:{running.port}/kansoku"
        if mode == "token":  # the victim is logged in: its session cookie goes with same-site posts
            page.goto(f"{base}/login")
            page.get_by_label("Dashboard token").fill(seeded.TOKEN)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(lambda url: "/login" not in url)
        page.goto(f"{base}/errors/1")  # the victim has the dashboard open (and its CSRF cookie)
        url, targets = attacker
        targets.append(f"{base}/errors/1/ignore")
        with page.expect_response(lambda r: r.url == targets[0]) as answer:
            page.goto(url)
        assert answer.value.status == 403
        assert _status(engine, 1) == "unresolved"

        page.goto(f"{base}/errors/1")  # kansoku's own form, same origin: accepted
        page.get_by_role("button", name="Ignore").first.click()
        page.wait_for_url(lambda u: "done=ignore" in u)
        assert _status(engine, 1) == "ignored"
    engine.dispose()
