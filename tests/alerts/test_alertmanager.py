"""A real Alertmanager (Debian's prometheus-alertmanager) receives, lists and resolves kansoku's alert."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from kansoku.alerts import AlertEngine, Dispatcher, parse_alerting
from kansoku.alerts.rules import SiteInfo

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [pytest.mark.prometheus, pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Any) -> Iterator[str]:
    """Alertmanager on a free loopback port, clustering off, notifying `receiver`; stopped by its pid."""
    assert BINARY is not None
    port = _free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route: {receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n"
        "receivers: [{name: hook, webhook_configs: "
        f"[{{url: '{receiver.url}/am', send_resolved: true}}]}}]\n")
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                pytest.fail("alertmanager exited: " + (tmp_path / "alertmanager.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _alerts(url: str) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v2/alerts", params={"filter": 'alertname="crit"'}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


def _wait(check: Any) -> Any:
    for _ in range(100):
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


def _notified(receiver: Any) -> list[str]:
    return [r.json()["status"] for r in receiver.requests if r.path == "/am"]


def test_alert_active_then_resolved(kit: Any, store: Engine, alertmanager: str, receiver: Any) -> None:
    """kansoku's alert shows active with its labels, annotations and generatorURL; then resolved."""
    config = parse_alerting({
        "channels": [{"name": "am", "type": "alertmanager", "url": alertmanager, "resend_seconds": 60}],
        "rules": [{"name": "crit", "description": "Critical errors"}], "group_wait_seconds": 0,
    }, site=SiteInfo(service="shop", environment="test", dashboard_url="https://obs.example.com"))
    engine = AlertEngine(config, store)  # the real clock: Alertmanager judges times by its own
    dispatcher = Dispatcher(config, store)
    engine.on_error(kit.event(), kit.change())
    assert dispatcher.run_once() == 1
    [alert] = _wait(lambda: _alerts(alertmanager))
    assert alert["status"]["state"] == "active"
    assert alert["labels"] == {"alertname": "crit", "rule": "crit", "severity": "critical", "service": "shop",
                               "environment": "test", "group": "g1", "source": "kansoku"}
    assert alert["annotations"] == {"summary": "ValueError: amount over limit",
                                    "description": "amount over limit",
                                    "count": "1", "suppressed": "0", "rule": "Critical errors"}
    assert alert["generatorURL"] == "https://obs.example.com/kansoku/errors/7"

    assert _wait(lambda: _notified(receiver)) == ["firing"]  # Alertmanager routed it

    engine.on_resolve("g1")
    assert dispatcher.run_once() == 1
    assert _wait(lambda: not _alerts(alertmanager))  # resolved alerts leave the active list
    assert _wait(lambda: _notified(receiver)[1:]) == ["resolved"]  # and Alertmanager says so
    resolved = [r.json() for r in receiver.requests if r.path == "/am"][-1]["alerts"][0]
    assert (resolved["status"], resolved["labels"]["group"]) == ("resolved", "g1")
    groups = httpx.get(alertmanager + "/api/v2/alerts/groups", timeout=5).json()
    assert all(a["labels"].get("alertname") != "crit" for g in groups for a in g["alerts"])


def _active(url: str, group: str) -> list[dict[str, Any]]:
    params = {"filter": ['alertname="crit"', f'group="{group}"'], "active": "true", "silenced": "false"}
    response = httpx.get(url + "/api/v2/alerts", params=params, timeout=5)
    response.raise_for_status()
    return [a for a in response.json() if a["status"]["state"] == "active"]


def _drain(dispatcher: Dispatcher) -> None:
    """Dispatch until a pass finds nothing due (rows held back behind an older one go next)."""
    for _ in range(10):
        if dispatcher.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def _resolve_as_resend_is_due(engine: AlertEngine, dispatcher: Dispatcher, alertmanager: str, kit: Any,
                               offset: list[float], i: int) -> bool:
    """Fire group i, then resolve it while a tick re-sends it; True if it is still active after."""
    group = f"race{i}"
    offset[0] = -1.5  # the trigger looks older than one re-send interval
    engine.on_error(kit.event(group), kit.change(group, group_id=i))
    _drain(dispatcher)
    assert _wait(lambda: _active(alertmanager, group))
    offset[0] = 0.0  # now the re-send is due
    barrier = threading.Barrier(2)

    def resend() -> None:
        barrier.wait()
        engine.tick()

    def resolve() -> None:
        barrier.wait()
        engine.on_resolve(group)

    threads = [threading.Thread(target=resend), threading.Thread(target=resolve)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _drain(dispatcher)
    return bool(_active(alertmanager, group))


def test_a_resolve_at_resend_time_is_never_overtaken(store: Engine, alertmanager: str, kit: Any) -> None:
    """20 times, a group is resolved the moment its Alertmanager re-send is due: 0 alerts reopen."""
    offset = [0.0]
    config = parse_alerting({
        "channels": [{"name": "am", "type": "alertmanager", "url": alertmanager, "resend_seconds": 1}],
        "rules": [{"name": "crit"}], "group_wait_seconds": 0,
    }, site=SiteInfo(service="shop", environment="test"))
    # Alertmanager judges endsAt by its own clock: the engine's clock is the real one, moved back
    # by hand while the trigger is written.
    engine = AlertEngine(config, store, clock=lambda: time.time() + offset[0])
    dispatcher = Dispatcher(config, store)
    reopened = [i for i in range(20) if _resolve_as_resend_is_due(engine, dispatcher, alertmanager, kit, offset, i)]
    assert reopened == []
