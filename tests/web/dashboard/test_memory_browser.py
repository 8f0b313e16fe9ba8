"""The memory report of a real instrumented app in Chromium: readable cards that fit their width.

The app is a Starlette app through `kansoku.instrument()` (its own runtime, store and debugger),
served by uvicorn with its lifespan, so the GC callback and the tracked objects are the real ones.
Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import kansoku
from kansoku import runtime as _runtime

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")

# Every element of a memory card that reaches past the card's edges, and any card or table wrapper
# that scrolls sideways (the layout must fit, not hide what it cut). Visually hidden elements (the
# table headings a phone layout keeps for screen readers, clipped to nothing) are not drawn: skipped.
OVERFLOWS = """() => {
  const clip = 'rect(0px, 0px, 0px, 0px)';
  const clipped = el => {
    for (let e = el; e; e = e.parentElement) if (getComputedStyle(e).clip === clip) return true;
    return false;
  };
  const name = el => `${el.closest('.memory-card').id} ${el.tagName.toLowerCase()}.${el.className}`;
  const found = [];
  for (const card of document.querySelectorAll('.memory-card')) {
    const box = card.getBoundingClientRect();
    for (const el of [card, ...card.querySelectorAll('*')]) {
      if (clipped(el)) continue;
      const r = el.getBoundingClientRect();
      if (r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5)) {
        found.push(`${name(el)} spans ${r.left}..${r.right}, the card ${box.left}..${box.right}`);
      }
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') {
        found.push(`${name(el)} scrolls sideways`);
      }
    }
  }
  return found;
}"""


class Cart:
    """An object whose lifetime the report follows."""


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory,
            serve_app: Callable[[Any], AbstractContextManager[str]]) -> Iterator[str]:
    """A Starlette app instrumented by kansoku on a throwaway store, served for real: the dashboard URL."""
    directory = tmp_path_factory.mktemp("memory")
    app = kansoku.instrument(Starlette(routes=[Route("/", hello)]),
                             database_url=f"sqlite:///{directory / 'k.db'}", strict=True, log_format="json",
                             service_name="memory-test", alert_dispatcher=False)
    try:
        with serve_app(app) as base:
            yield f"{base}/kansoku"
    finally:
        _runtime.shutdown(5.0)


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_memory_cards_fit_and_read_well(browser: Browser, app_url: str, width: int, height: int) -> None:
    """At 1280 and 390 px nothing in a memory card is wider than it; GC and collection times show."""
    kept, gone = Cart(), Cart()
    assert kansoku.track_object(kept, "cart-kept") and kansoku.track_object(gone, "cart-gone")
    del gone
    gc.collect()  # a real collection for the tracker's callback (same process as the server)
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  is_mobile=width < 500, has_touch=width < 500)
    page = context.new_page()
    console_errors: list[str] = []  # a CSP violation (inline style or script) shows up here
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{app_url}/performance")

    expect(page.get_by_role("heading", name="GC", exact=True, level=3)).to_be_visible()
    for title in ("Process", "tracemalloc", "Tracked objects"):
        expect(page.get_by_role("heading", name=title, exact=True, level=3)).to_be_visible()
    expect(page.locator("#mem-gc dt", has_text="Uncollectable (total)")).to_be_visible()
    expect(page.get_by_role("table", name="Generations")).to_be_visible()
    first_time = page.locator("#mem-gc-recent_collections + .table-wrap time").first
    first_time.scroll_into_view_if_needed()
    expect(first_time).to_be_visible()
    assert TIME.match(first_time.inner_text()), first_time.inner_text()
    assert re.match(r"^\d{4}-\d\d-\d\dT", first_time.get_attribute("datetime") or "")
    expect(page.locator("#mem-process dd", has_text="%")).to_be_visible()
    expect(page.locator("#mem-tracked_objects")).to_contain_text("cart-kept")
    expect(page.locator("#mem-tracked_objects")).to_contain_text("cart-gone")

    overflows = page.evaluate(OVERFLOWS)
    assert overflows == [], "\n".join(overflows)
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    assert console_errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"16-performance-memory-{width}.png"), full_page=True)
    context.close()
    del kept
