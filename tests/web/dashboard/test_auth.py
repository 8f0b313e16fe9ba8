"""Who gets in: token and loopback modes, the login cookie, CSRF, security headers, exempt paths."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from starlette.routing import BaseRoute, Mount, Route

from kansoku.settings import load_settings
from kansoku.store import tables as t
from kansoku.web.auth import CSP, AuthMiddleware, is_loopback_client

GROUP_STATUS = sa.select(t.error_groups.c.status).where(t.error_groups.c.id == 1)


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the web app, path parameters filled in."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if route.path == "/static":
                    found.append(("GET", "/static/kansoku.css"))
                else:
                    walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                path = re.sub(r"\{([a-z_]+)(:[a-z]+)?\}", lambda m: "1" if m.group(2) == ":int" else "x1", route.path)
                for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                    found.append((method, prefix + path))

    walk(list(app.app.routes), "")
    return found


def csrf_of(html: str) -> str:
    """The CSRF token a page put in its forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post("/login", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/errors"})


# --- loopback mode ----------------------------------------------------------------------------------


async def test_loopback_client_gets_in_and_is_told_why(make_app: Any, seeded: Any) -> None:
    """Without a token a 127.0.0.1 client sees the pages, and the page says it is loopback-only."""
    async with seeded.asgi_client(make_app()) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert "Open to loopback clients only" in response.text
    assert "KANSOKU_DASHBOARD_TOKEN" in response.text


async def test_every_route_refuses_a_remote_client_without_token(make_app: Any, seeded: Any) -> None:
    """Every page, API route and asset answers 403 to 10.0.0.5 when no token is set."""
    app = make_app()
    routes = all_routes(app)
    assert ("GET", "/api/alerts/rules") in routes and ("POST", "/errors/bulk") in routes
    async with seeded.asgi_client(app, host="10.0.0.5") as client:
        for method, path in routes:
            response = await client.request(method, path)
            assert response.status_code == 403, (method, path, response.status_code)
            assert "loopback clients only" in response.text


@pytest.mark.parametrize(("host", "headers", "allowed"), [
    ("127.0.0.1", {}, True),
    ("127.8.9.10", {}, True),
    ("::1", {"host": "[::1]:8000"}, True),
    ("::ffff:127.0.0.1", {}, True),
    ("10.0.0.5", {}, False),
    ("192.168.1.20", {}, False),
    ("127.0.0.1", {"x-forwarded-for": "203.0.113.9"}, False),
    ("127.0.0.1", {"forwarded": "for=203.0.113.9"}, False),
    ("127.0.0.1", {"host": "evil.example"}, False),
    ("127.0.0.1", {"host": "localhost:8000"}, True),
    ("127.0.0.1", {"host": "app.localhost"}, True),
])
def test_loopback_rule(host: str, headers: dict[str, str], allowed: bool) -> None:
    """Loopback means a loopback peer, no proxy in between, and a loopback Host (no DNS rebinding)."""
    raw = [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:8000", **headers}.items()]
    assert is_loopback_client({"type": "http", "client": (host, 1234), "headers": raw}) is allowed


def test_no_client_address_is_not_loopback() -> None:
    """A unix-socket peer (no address) is not trusted as local: a proxy may sit in front of it."""
    assert not is_loopback_client({"type": "http", "client": None, "headers": []})


# --- token mode -------------------------------------------------------------------------------------


async def test_every_route_refuses_a_client_without_token(make_app: Any, seeded: Any) -> None:
    """With a token, pages redirect to the login form and API routes and POSTs answer 401, even on loopback."""
    app = make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(app) as client:
        for method, path in all_routes(app):
            response = await client.request(method, path)
            if path.startswith("/static/"):
                assert response.status_code == 200  # the login page needs its stylesheet
            elif method == "GET" and not path.startswith("/api/"):
                assert response.status_code == 303, (method, path)
                assert response.headers["location"] == f"/kansoku/login?next={quote(path, safe='')}"
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.headers["www-authenticate"] == 'Bearer realm="kansoku"'
                assert "authentication required" in response.text


async def test_wrong_bearer_token_is_refused(make_app: Any, seeded: Any) -> None:
    """A wrong bearer token gets 401 on the API and on pages, whatever its length."""
    app = make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(app) as client:
        for given in ("x", seeded.TOKEN[:-1], seeded.TOKEN + "x", ""):
            response = await client.get("/api/alerts/rules", headers={"authorization": f"Bearer {given}"})
            assert response.status_code == 401
        response = await client.get("/errors", headers={"authorization": f"Basic {seeded.TOKEN}"})
        assert response.status_code == 401


async def test_bearer_token_opens_api_and_needs_no_csrf(make_app: Any, seeded: Any, engine: sa.Engine) -> None:
    """`Authorization: Bearer <token>` reads the API and changes state without a CSRF token."""
    app = make_app(dashboard_token=seeded.TOKEN)
    headers = {"authorization": f"Bearer {seeded.TOKEN}"}
    async with seeded.asgi_client(app, headers=headers) as client:
        assert (await client.get("/api/alerts/deliveries")).status_code == 200
        response = await client.post("/errors/1/resolve")
    assert response.status_code == 303
    with engine.connect() as conn:
        assert conn.execute(GROUP_STATUS).scalar() == "resolved"


async def test_login_sets_a_strict_signed_cookie(make_app: Any, seeded: Any) -> None:
    """Logging in sets an HttpOnly, SameSite=Strict cookie scoped to the prefix, then redirects to `next`."""
    app = make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(app) as client:
        form = await client.get("/login")
        assert form.status_code == 200
        assert 'type="password"' in form.text
        assert "kansoku_csrf=" in form.headers["set-cookie"]
        response = await log_in(client, seeded.TOKEN)
        assert response.status_code == 303
        assert response.headers["location"] == "/kansoku/errors"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("kansoku_session=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/kansoku" in cookie
        assert "Max-Age=43200" in cookie
        page = await client.get("/errors")
        assert page.status_code == 200
        assert "Log out" in page.text
        assert "loopback" not in page.text


async def test_wrong_token_on_the_form_is_refused(make_app: Any, seeded: Any) -> None:
    """A wrong token re-shows the form with 401 and sets no session."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        response = await log_in(client, "guess")
        assert response.status_code == 401
        assert "Wrong token." in response.text
        assert "kansoku_session" not in response.headers.get("set-cookie", "")
        assert (await client.get("/errors")).status_code == 303


async def test_login_form_needs_its_csrf_token(make_app: Any, seeded: Any) -> None:
    """A login POST without the form's CSRF token (login CSRF) is refused even with the right token."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        response = await client.post("/login", data={"token": seeded.TOKEN, "csrf_token": "forged-value-123456789"})
    assert response.status_code == 403
    assert "kansoku_session" not in response.headers.get("set-cookie", "")


async def test_login_attempts_are_throttled(make_app: Any, seeded: Any) -> None:
    """After ten wrong tokens from one address, even the right one waits (429)."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        for _ in range(10):
            assert (await log_in(client, "guess")).status_code == 401
        assert (await log_in(client, seeded.TOKEN)).status_code == 429


async def test_login_next_cannot_leave_the_dashboard(make_app: Any, seeded: Any) -> None:
    """`next` pointing at another host (//evil, a scheme, a backslash) sends to the overview instead."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "errors"):
            client.cookies.clear()
            form = await client.get("/login")
            response = await client.post("/login", data={"csrf_token": csrf_of(form.text), "token": seeded.TOKEN,
                                                         "next": target})
            assert response.headers["location"] == "/kansoku/", target


async def test_forged_or_expired_cookie_is_refused(tmp_path: Any, engine: sa.Engine, seeded: Any) -> None:
    """A cookie signed with another token, or older than the session lifetime, does not get in."""
    from kansoku.web.app import build_web_app

    now = [seeded.NOW]
    settings = seeded.make_settings(tmp_path, dashboard_token=seeded.TOKEN)
    app = build_web_app(seeded.make_runtime(settings, engine), clock=lambda: now[0])
    other = build_web_app(seeded.make_runtime(seeded.make_settings(tmp_path, dashboard_token="other-token-1234"),
                                              engine), clock=lambda: now[0])
    async with seeded.asgi_client(other) as forger:
        await log_in(forger, "other-token-1234")
        forged = forger.cookies["kansoku_session"]
    async with seeded.asgi_client(app) as client:
        client.cookies.set("kansoku_session", forged)
        assert (await client.get("/errors")).status_code == 303
        client.cookies.clear()
        await log_in(client, seeded.TOKEN)
        assert (await client.get("/errors")).status_code == 200
        now[0] += 12 * 3600 + 1
        assert (await client.get("/errors")).status_code == 303


async def test_logout_ends_the_session(make_app: Any, seeded: Any) -> None:
    """Logging out clears the cookie and the old cookie value no longer works."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        await log_in(client, seeded.TOKEN)
        page = await client.get("/")
        session = client.cookies["kansoku_session"]
        refused = await client.post("/logout")
        assert refused.status_code == 403  # no CSRF token: a link on another site cannot log you out
        response = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303
        assert response.headers["location"] == "/kansoku/login"
        assert "kansoku_session=;" in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
        client.cookies.set("kansoku_session", session)
        assert (await client.get("/")).status_code == 303


# --- CSRF -------------------------------------------------------------------------------------------


async def test_state_change_without_csrf_is_refused(make_app: Any, seeded: Any, engine: sa.Engine) -> None:
    """A logged-in POST without the CSRF token (or with a wrong one) is refused and changes nothing."""
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN)) as client:
        await log_in(client, seeded.TOKEN)
        page = await client.get("/errors/1")
        for data in ({}, {"csrf_token": "wrong"}):
            response = await client.post("/errors/1/resolve", data=data)
            assert response.status_code == 403
            assert "CSRF" in response.text
        with engine.connect() as conn:
            assert conn.execute(GROUP_STATUS).scalar() == "unresolved"
        response = await client.post("/errors/1/resolve", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303
        api = await client.post("/api/alerts/silences", json={"rule": "x", "duration_minutes": 5})
        assert api.status_code == 403  # the API with the cookie needs the header too
        api = await client.post("/api/alerts/silences", json={"rule": "x", "duration_minutes": 5},
                                headers={"x-csrf-token": csrf_of(page.text)})
        assert api.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(GROUP_STATUS).scalar() == "resolved"


async def test_loopback_mode_still_checks_csrf(make_app: Any, seeded: Any, engine: sa.Engine) -> None:
    """With no token, a POST needs the CSRF token bound to the browser's cookie by the store's key:
    the cookie's own value (all that a page able to set the cookie knows) is refused."""
    async with seeded.asgi_client(make_app()) as client:
        refused = await client.post("/errors/1/ignore")
        assert refused.status_code == 403
        page = await client.get("/errors/1")
        cookie = client.cookies["kansoku_csrf"]
        assert cookie != csrf_of(page.text)
        assert (await client.post("/errors/1/ignore", data={"csrf_token": cookie})).status_code == 403
        response = await client.post("/errors/1/ignore", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303
        client.cookies.clear()  # the token alone, without the cookie it must match, is not enough
        assert (await client.post("/errors/1/reopen", data={"csrf_token": csrf_of(page.text)})).status_code == 403
    with engine.connect() as conn:
        assert conn.execute(GROUP_STATUS).scalar() == "ignored"


# --- headers and exempt paths -----------------------------------------------------------------------


async def test_security_headers_on_every_response(make_app: Any, seeded: Any) -> None:
    """Pages, assets, 404s, refusals, the login form and the API all carry the security headers."""
    app = make_app(dashboard_token=seeded.TOKEN)
    async with seeded.asgi_client(app) as client:
        responses = [await client.get("/"), await client.get("/login"), await client.get("/static/kansoku.css"),
                     await client.get("/api/alerts/rules")]
        await log_in(client, seeded.TOKEN)
        responses += [await client.get("/errors/1"), await client.get("/no/such/page"),
                      await client.post("/errors/1/x")]
    for response in responses:
        headers = response.headers
        assert headers["content-security-policy"] == CSP, response.url
        assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"


async def test_exempt_path_skips_auth_but_keeps_headers(seeded: Any, tmp_path: Any) -> None:
    """/slack/actions reaches the app without credentials (Slack signs it) and still gets the headers."""
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = AuthMiddleware(inner, load_settings(dashboard_token=seeded.TOKEN))
    async with seeded.asgi_client(app, host="203.0.113.5") as client:
        response = await client.post("/slack/actions", content=b"payload=x")
        refused = await client.post("/slack/actionsx")
    assert response.status_code == 200 and seen == ["/kansoku/slack/actions"]
    assert response.headers["content-security-policy"] == CSP
    assert refused.status_code == 401


async def test_slack_route_is_wired_and_verifies_its_signature(make_app: Any, seeded: Any) -> None:
    """With a Slack signing secret configured, /slack/actions exists and refuses an unsigned request."""
    alerts = {"channels": [{"name": "s", "type": "slack", "webhook_url": "https://hooks.slack.com/services/a/b/c",
                            "signing_secret": "slack-signing-secret"}]}
    async with seeded.asgi_client(make_app(dashboard_token=seeded.TOKEN, alerts=alerts), host="3.3.3.3") as client:
        response = await client.post("/slack/actions", content=b"payload=%7B%7D")
    assert response.status_code == 401
    assert response.json() == {"error": "missing signature headers"}
