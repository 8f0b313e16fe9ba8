"""Loopback mode refuses requests that look proxied, loudly, and start-up warns on an open bind."""

from __future__ import annotations

from typing import Any

import pytest

from kansoku.cli._common import warn_open_dashboard
from kansoku.settings import load_settings
from kansoku.web.auth import is_loopback_client


def _scope(http_version: str = "1.1", **headers: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/errors", "root_path": "/kansoku", "scheme": "http",
            "http_version": http_version, "query_string": b"", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"),
                        *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items())]}


@pytest.mark.parametrize(("version", "headers"), [
    ("1.0", {}),  # nginx's bare proxy_pass: Host rewritten to the upstream, HTTP/1.0, no header
    ("1.1", {"via": "1.1 varnish"}),
    ("1.1", {"x_forwarded_proto": "https"}),
    ("1.1", {"x_forwarded_host": "kansoku.example"}),
    ("1.1", {"cf_connecting_ip": "203.0.113.9"}),
])
def test_requests_that_look_proxied_are_not_loopback(version: str, headers: dict[str, str]) -> None:
    """A local proxy's request is not taken for a loopback client."""
    assert is_loopback_client(_scope(version)) is (version != "1.0")  # the same request, direct: let in
    assert not is_loopback_client(_scope(version, **headers))


async def test_the_refusal_names_the_proxy_and_the_token(make_app: Any) -> None:
    """A proxied request in loopback mode gets a 403 that says why and to set KANSOKU_DASHBOARD_TOKEN."""
    app = make_app()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope("1.0", accept="application/json"), receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    assert sent[0]["status"] == 403
    assert "came through a proxy (HTTP/1.0" in body and "KANSOKU_DASHBOARD_TOKEN" in body


@pytest.mark.parametrize(("host", "token", "warned"), [
    ("0.0.0.0", None, True), ("::", None, True), ("192.0.2.10", None, True),
    ("127.0.0.1", None, False), ("localhost", None, False), ("0.0.0.0", "s3cret-token-value", False),
])
def test_an_open_bind_without_a_token_warns_at_start(capsys: pytest.CaptureFixture[str], host: str,
                                                    token: str | None, warned: bool) -> None:
    """Listening beyond loopback with no token says so on stderr, naming KANSOKU_DASHBOARD_TOKEN."""
    warn_open_dashboard(host, load_settings(dashboard_token=token))
    err = capsys.readouterr().err
    assert ("WARNING" in err and "KANSOKU_DASHBOARD_TOKEN" in err) is warned
