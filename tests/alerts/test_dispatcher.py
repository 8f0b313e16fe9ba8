"""The dispatcher loop: runs as a task, ticks the engine, delivers, stops; secrets stay out of logs."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from sqlalchemy import Engine

from kansoku import logs
from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.settings import load_settings


async def test_run_delivers_until_stopped(kit: Any, store: Engine, receiver: Any) -> None:
    """`run()` as a background task delivers what the engine writes; `stop()` ends it."""
    config = parse_alerting({"channels": [{"name": "w", "type": "webhook", "url": receiver.url}],
                             "rules": [{"name": "r"}], "group_wait_seconds": 0, "poll_seconds": 0.02})
    engine = AlertEngine(config, store)
    dispatcher = Dispatcher(config, store, alert_engine=engine)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.to_thread(engine.on_error, kit.event(), kit.change())
    for _ in range(250):
        if receiver.requests:
            break
        await asyncio.sleep(0.02)
    dispatcher.stop()
    await asyncio.wait_for(task, timeout=5)
    assert [r.json()["rule"] for r in receiver.requests] == ["r"]


def test_slack_webhook_url_never_reaches_the_log(kit: Any, store: Engine, clock: Any, receiver: Any) -> None:
    """httpx's request log line shows the Slack host, not the webhook's secret path."""
    buffer = io.StringIO()
    logs.configure_logging(load_settings(log_format="json"), stream=buffer)
    try:
        url = receiver.url + "/services/T000/B000/very-secret-path"
        config = parse_alerting({"channels": [{"name": "s", "type": "slack", "webhook_url": url}],
                                 "rules": [{"name": "r"}], "group_wait_seconds": 0})
        AlertEngine(config, store, clock=clock).on_error(kit.event(), kit.change())
        Dispatcher(config, store, clock=clock).run_once()
    finally:
        logs.configure_logging(load_settings(log_format="json"))
    output = buffer.getvalue()
    assert len(receiver.requests) == 1
    assert "very-secret-path" not in output
    assert "[alert channel]" in output
