"""The dashboard in Debian's Chromium (Playwright) against a real uvicorn server on 127.0.0.1.

One flow walks through what a person does (log in, filter, search, open an error, resolve and
reopen it, silence alerts, open a trace, log out), saving a screenshot of each page under
test-artifacts/dashboard/. Hostile exception messages must render as text and run nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Dialog, Page, expect

from kansoku.store import tables as t

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
Server = tuple[str, sa.Engine]


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot as test-artifacts/dashboard/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def fail_on_dialog(dialogs: list[str]) -> Any:
    def handler(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    return handler


def log_in(page: Page, base: str, token: str, next_path: str = "/") -> None:
    page.goto(f"{base}{next_path}")
    expect(page).to_have_url(re.compile(r"/kansoku/login\?next="))
    page.get_by_label("Dashboard token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state()


def test_full_flow(page: Page, server: Server, seeded: Any) -> None:
    """Log in, filter and search errors, resolve and reopen, silence, open a trace, log out."""
    base, engine = server
    dialogs: list[str] = []
    page.on("dialog", fail_on_dialog(dialogs))
    console_errors: list[str] = []  # a CSP violation (an inline style or script) shows up here
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)

    page.goto(f"{base}/login")
    shot(page, "01-login")
    page.get_by_label("Dashboard token").fill("wrong token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong token.")

    log_in(page, base, seeded.TOKEN)
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.locator(".stat").first).to_contain_text("Requests")
    shot(page, "02-overview")

    page.get_by_role("link", name="Errors", exact=True).click()
    expect(page.locator("#result-count")).to_have_text("33 groups match.")
    page.get_by_label("Severity").select_option("critical")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#result-count")).to_have_text("1 group matches.")
    shot(page, "03-errors-filtered")
    page.get_by_label("Severity").select_option("")
    page.get_by_label("Search").fill("filler")
    page.get_by_label("Search").press("Enter")
    page.get_by_label("Select all on this page").check()  # shown and wired by the script
    expect(page.locator('input[name="ids"]:checked')).to_have_count(25)
    page.get_by_label("Select all on this page").uncheck()
    page.get_by_label("Search").fill("amount over")
    page.get_by_label("Search").press("Enter")
    expect(page.locator("#result-count")).to_have_text("1 group matches.")
    shot(page, "04-errors-search")

    page.get_by_role("link", name="ValueError: amount over limit").click()
    expect(page.locator("h1")).to_have_text("ValueError: amount over limit")
    expect(page.locator(".exc-head").first).to_contain_text("ValueError: amount 1250.5 over limit")
    expect(page.get_by_text("Direct cause of the exception above")).to_be_visible()
    shot(page, "05-error-detail")
    page.get_by_role("link", name="← Older").click()
    expect(page).to_have_url(re.compile(r"event=e2"))

    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".flash")).to_have_text("Group resolved.")
    expect(page.locator(".detail-head .st-resolved")).to_be_visible()
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.error_groups.c.status).where(t.error_groups.c.id == 1)).scalar() == "resolved"
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator(".flash")).to_have_text("Group reopened.")
    shot(page, "06-error-reopened")

    page.get_by_role("link", name="Alerts", exact=True).click()
    expect(page.get_by_role("heading", name="Channels")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("XYZSECRET")
    expect(page.locator("body")).not_to_contain_text("webhook-signing-secret")
    page.get_by_label("Title contains").fill("db went away")
    page.get_by_label("For", exact=True).select_option("240")
    page.get_by_label("Comment").fill("maintenance")
    page.get_by_role("button", name="Add silence").click()
    expect(page.locator(".flash")).to_have_text("Silence added.")
    expect(page.locator("#silences")).to_contain_text("db went away")
    shot(page, "07-alerts")
    page.get_by_role("button", name="Retry notification 2").click()
    expect(page.locator(".flash")).to_have_text("Notification queued for another attempt.")

    page.get_by_role("link", name="Traces", exact=True).click()
    shot(page, "08-traces")
    page.locator(f'a[href$="/traces/{seeded.TRACE_ID}"]').first.click()
    expect(page.locator("h1")).to_contain_text(seeded.TRACE_ID)
    expect(page.locator(".span-row")).to_have_count(4)
    page.locator(".span-row summary").nth(1).click()
    expect(page.get_by_text("SELECT * FROM orders WHERE id = ?")).to_be_visible()
    shot(page, "09-trace-waterfall")

    page.get_by_role("link", name="Performance", exact=True).click()
    expect(page.get_by_text("app.orders.create_order")).to_be_visible()
    page.get_by_role("link", name="Calls").click()
    expect(page.locator("tbody tr").first).to_contain_text("app.orders.create_order")
    shot(page, "10-performance")

    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.locator("body")).not_to_contain_text(seeded.TOKEN)
    expect(page.locator("body")).not_to_contain_text("XYZSECRET")
    shot(page, "11-settings")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/kansoku/login$"))
    page.goto(f"{base}/errors")
    expect(page).to_have_url(re.compile(r"/kansoku/login\?next=%2Ferrors"))
    assert dialogs == []
    assert [m for m in console_errors if "401" not in m] == []  # the wrong-token form answers 401


def test_hostile_messages_render_as_text(page: Page, server: Server, seeded: Any) -> None:
    """`<script>` and `<img onerror>` in an error render as text on the list and detail pages."""
    base, _ = server
    dialogs: list[str] = []
    page.on("dialog", fail_on_dialog(dialogs))
    log_in(page, base, seeded.TOKEN, "/errors?status=&severity=critical")
    row = page.locator("tbody tr").first
    expect(row).to_contain_text(seeded.XSS_SCRIPT)
    expect(row).to_contain_text(seeded.XSS_IMG)
    row.get_by_role("link").first.click()
    expect(page.locator("h1")).to_have_text(f"RuntimeError: {seeded.XSS_SCRIPT}")
    expect(page.locator(".culprit").first).to_have_text(seeded.XSS_IMG)
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    shot(page, "12-hostile-message")
    page.wait_for_timeout(200)  # give a would-be onerror handler its chance to fire
    assert dialogs == []


def test_phone_and_dark_mode(browser: Browser, server: Server, seeded: Any) -> None:
    """On a phone-sized screen in dark mode the list becomes cards and nothing scrolls sideways."""
    base, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark",
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, base, seeded.TOKEN, "/errors")
    expect(page.locator("#result-count")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(14, 17, 22)"
    shot(page, "13-phone-dark-errors", full_page=False)
    page.locator("tbody tr").first.evaluate("row => row.scrollIntoView()")
    shot(page, "13b-phone-dark-errors-list", full_page=False)
    page.goto(f"{base}/errors/1")
    shot(page, "14-phone-dark-detail", full_page=False)
    page.goto(f"{base}/")
    shot(page, "15-phone-dark-overview", full_page=False)
    context.close()


def test_keyboard_focus_is_visible(page: Page, server: Server, seeded: Any) -> None:
    """Tab reaches the skip link first, it shows a focus outline, and Enter moves to the content."""
    base, _ = server
    log_in(page, base, seeded.TOKEN)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
