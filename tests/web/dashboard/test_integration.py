"""The dashboard over events that the real ErrorTracker stored (not hand-made rows)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kansoku.errors import ErrorTracker
from kansoku.store import tables as t
from kansoku.web.app import build_web_app


def _checkout(card_number: str, password: str) -> None:
    try:
        {}["limit"]
    except KeyError as exc:
        raise ValueError("payment refused: <script>alert(1)</script>") from exc


async def test_detail_page_of_a_captured_exception(tmp_path: Path, seeded: Any) -> None:
    """A chained exception captured by ErrorTracker shows its source, redacted locals and chain."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'real.db'}")
    t.metadata.create_all(engine)
    settings = seeded.make_settings(tmp_path, trace_level="VERBOSE", database_url=f"sqlite:///{tmp_path / 'real.db'}")
    tracker = ErrorTracker(settings, engine)
    tracker.start()
    try:
        try:
            # built at run time, so that the source lines shown around each frame do not hold them
            _checkout(" ".join(["4111"] * 4), "-".join(["hunter2", "secret"]))
        except ValueError as exc:
            event_id = tracker.capture(exc, tags={"region": "eu"}, user={"id": "u-9"})
        assert tracker.flush(10)
    finally:
        tracker.close(10)
    runtime = seeded.make_runtime(settings, engine, debugger=False)
    async with seeded.asgi_client(build_web_app(runtime)) as client:
        listing = await client.get("/errors")
        detail = await client.get(f"/errors/{event_id}")
    engine.dispose()
    assert "ValueError: payment refused" in listing.text
    html = detail.text
    assert detail.status_code == 200
    assert f"Event <code>{event_id}</code>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert html.index("<strong>ValueError</strong>") < html.index("<strong>KeyError</strong>")
    assert "Direct cause of the exception above" in html
    assert re.search(r'class="line current"><span class="ln">\d+</span>\s*raise ValueError', html)
    assert "<code>password</code>" in html and "hunter2-secret" not in html
    assert "4111 1111 1111 1111" not in html
    assert "u-9" in html
