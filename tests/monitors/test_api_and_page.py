"""The monitors JSON API and dashboard page, behind the dashboard's authorization."""

from __future__ import annotations

from pathlib import Path

import httpx

from kansoku import runtime
from kansoku.testing import isolated_runtime


async def test_api_and_page_show_monitors_and_their_runs(tmp_path: Path) -> None:
    """GET /api/monitors[/NAME] and /monitors list monitors with runs and next run; no token: 401."""
    async def app(scope: object, receive: object, send: object) -> None:  # never reached
        raise AssertionError("kansoku answers these routes")

    with isolated_runtime(tmp_path, dashboard_token="dash", store_spans=False):
        import kansoku

        with kansoku.monitor("nightly-report", schedule="0 3 * * *", timezone="Europe/Berlin"):
            pass
        served = runtime.instrument(app)
        auth = {"Authorization": "Bearer dash"}
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert (await client.get("/kansoku/api/monitors")).status_code == 401
            listed = (await client.get("/kansoku/api/monitors", headers=auth)).json()["items"]
            assert [(m["name"], m["status"], m["schedule_text"]) for m in listed] == [
                ("nightly-report", "ok", "0 3 * * * (Europe/Berlin)")]
            assert listed[0]["next_expected"].endswith(":00:00+00:00")
            one = (await client.get("/kansoku/api/monitors/nightly-report", headers=auth)).json()
            assert [(c["status"], c["source"]) for c in one["checkins"]] == [("ok", "code")]
            assert (await client.get("/kansoku/api/monitors/nope", headers=auth)).status_code == 404
            page = await client.get("/kansoku/monitors", headers=auth)
            assert page.status_code == 200
            assert all(text in page.text for text in ("nightly-report", "0 3 * * * (Europe/Berlin)", "next expected"))
            assert 'href="/kansoku/monitors" aria-current="page"' in page.text
            unknown = await client.post("/kansoku/api/checkins/ghost?status=ok", headers=auth)
            assert unknown.status_code == 404 and "no monitor named 'ghost'" in unknown.json()["error"]
