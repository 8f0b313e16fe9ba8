"""The logs page in Debian's Chromium: search, expand a line, and the live tail within the CSP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.routing import Mount

from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.store.logs import write_logs
from kansoku.web.app import build_web_app

from .conftest import TOKEN, ServerThread, make_runtime, make_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"


def _line(n: int, message: str, **fields: Any) -> dict[str, Any]:
    return {"timestamp": time.time(), "level": fields.pop("level", "info"), "logger": "shop.orders",
            "message": message, "service": "shop", "trace_id": f"{n:032x}", "request_id": f"req-{n}",
            "attributes": {"order_id": n, **fields}}


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    """The web app over a migrated SQLite store with a few log lines, served by uvicorn."""
    directory: Path = tmp_path_factory.mktemp("logs-browser")
    store = Store.open(load_settings(database_url=f"sqlite:///{directory / 'kansoku.db'}"), migrate=True)
    write_logs(store.engine, [_line(n, f"order {n} created") for n in range(1, 31)]
               + [_line(31, "payment failed", level="warning")])
    web = build_web_app(make_runtime(make_settings(directory, dashboard_token=TOKEN), store.engine, debugger=False))
    with ServerThread(Starlette(routes=[Mount("/kansoku", app=web)])) as running:
        yield f"http://127.0.0.1:{running.port}/kansoku", store
    store.close()


def test_search_expand_and_live_tail(page: Page, logs_server: tuple[str, Store]) -> None:
    """Search by field, expand a line to its fields, tick live tail: a new line appears as text, no CSP error."""
    base, store = logs_server
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{base}/logs")
    page.get_by_label("Dashboard token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/logs"))
    page.get_by_label("Query").fill("level>=warning")
    page.get_by_role("button", name="Search").click()
    lines = page.locator("#log-lines > li")
    expect(lines).to_have_count(1)
    lines.first.locator("summary").click()
    expect(lines.first.locator("dl.kv")).to_contain_text("order_id")
    page.get_by_label("Query").fill("service=shop")
    page.get_by_role("button", name="Search").click()
    page.get_by_label("Live tail (new lines every 2 s)").check()
    write_logs(store.engine, [_line(99, XSS)])
    expect(page.locator("#log-lines > li").first).to_contain_text(XSS, timeout=10_000)
    assert page.locator("#log-lines img").count() == 0  # shown as text, never as markup
    assert console_errors == []
