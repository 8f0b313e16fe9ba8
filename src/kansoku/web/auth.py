"""Who may see kansoku's dashboard and API: one pure ASGI wrapper around the web app.

Two modes, chosen by `Settings.dashboard_token`:

- **token**: a browser logs in with a form that sets a signed, HttpOnly, SameSite=Strict session
  cookie; scripts send ``Authorization: Bearer <token>``. Secrets are compared in constant time.
- **loopback** (no token): only clients on 127.0.0.0/8 or ::1 are let in, and only when the request
  was not forwarded by a proxy and names a loopback host (which stops DNS rebinding).

Every state change (any method but GET/HEAD/OPTIONS) from a browser must come from kansoku's own
origin (`Sec-Fetch-Site` and `Origin`, see `cross_origin`), and needs a CSRF token, sent as the form field
``csrf_token`` or the ``X-CSRF-Token`` header, unless the caller authenticated with a bearer token
(a browser never adds that header by itself). Logged in, the token is an HMAC of the session id;
otherwise it is a double-submit cookie. Every response gets the security headers (a CSP with no
inline script, no framing, nosniff, a strict referrer policy). Exempt paths (the Slack actions
endpoint, which verifies Slack's own signature) skip authentication and CSRF but keep the headers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

from starlette._utils import get_route_path
from starlette.requests import cookie_parser

from kansoku.settings import Settings
from kansoku.typing import ASGIApp, Receive, Scope, Send
from kansoku.web._auth_http import (
    CSP,
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    SecuredSend,
    header_value,
    plain_login_page,
    prefix,
    problem,
    query_next,
    read_form,
    redirect,
    respond,
    safe_next,
    set_cookie,
    submitted_csrf,
    wants_json,
)
from kansoku.web._sessions import SessionState

__all__ = [
    "CSP",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SCOPE_KEY",
    "SECURITY_HEADERS",
    "Access",
    "AuthMiddleware",
    "LoginPage",
    "access_of",
    "cross_origin",
    "is_loopback_client",
    "is_loopback_host",
    "proxied",
]

SCOPE_KEY: Final = "kansoku.access"
SESSION_COOKIE: Final = "kansoku_session"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_MAX_AGE: Final = 12 * 3600.0
LOGIN_FAILURES_ALLOWED: Final = 10  # per client address and window, then 429
LOGIN_FAILURE_WINDOW: Final = 300.0
# Headers that proxies and CDNs add: any of them means the peer is not the client.
_FORWARDED: Final = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"via", b"x-forwarded-host",
                     b"x-forwarded-proto", b"x-forwarded-server", b"x-forwarded-port", b"x-original-forwarded-for",
                     b"cf-connecting-ip", b"true-client-ip", b"x-client-ip", b"x-cluster-client-ip",
                     b"fastly-client-ip", b"x-envoy-external-address")


@dataclass(frozen=True)
class Access:
    """How the current request got in; the pages read it to show the mode and fill CSRF fields."""

    mode: Literal["token", "loopback"]
    via: Literal["session", "bearer", "loopback", "anonymous"]
    csrf_token: str

    @property
    def can_logout(self) -> bool:
        """A logout button makes sense only for a browser session."""
        return self.via == "session"


LoginPage = Callable[[Scope, Mapping[str, Any]], str]
"""Renders the login page (HTML) from the scope and {csrf_token, error, next, prefix}."""


def access_of(scope: Scope) -> Access:
    """The `Access` that `AuthMiddleware` stored in the scope (anonymous loopback if none)."""
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Access) else Access("loopback", "anonymous", "")


def is_loopback_client(scope: Scope) -> bool:
    """True for a direct (not proxied) client on 127.0.0.0/8 or ::1 naming a loopback host."""
    client = scope.get("client")
    if not client or not _is_loopback_ip(str(client[0])):
        return False  # no peer address (a unix socket behind a proxy, say) is not loopback
    if proxied(scope) is not None:
        return False  # a local reverse proxy makes every remote client look local
    host = dict(scope.get("headers") or ()).get(b"host")
    return host is None or is_loopback_host(host.decode("latin-1"))


def proxied(scope: Scope) -> str | None:
    """What shows that a request came through a proxy, or None.

    A proxy's forwarding headers, or HTTP/1.0: nginx's bare `proxy_pass` rewrites Host to the
    upstream's (127.0.0.1:8000) and adds no header, but speaks HTTP/1.0 to the upstream unless told
    otherwise, while browsers and HTTP clients speak 1.1 or later.
    """
    for name, _ in scope.get("headers") or ():
        if name in _FORWARDED:
            return f"a {name.decode('latin-1')} header"
    if scope.get("http_version") == "1.0":
        return "HTTP/1.0, as a proxy speaks it"
    return None


def cross_origin(scope: Scope) -> str | None:
    """Why a state-changing request comes from a page of another origin, or None.

    Browsers say where a request comes from: `Sec-Fetch-Site` (same-origin, same-site, cross-site,
    none) and `Origin`. A page on another port of the same host is "same-site" but not the same
    origin, and it can set cookies for this host (cookies know no ports): so only "same-origin"
    (or "none", a request the user made) passes, and an `Origin` must name this host and port.
    Clients that send neither (scripts, curl) are judged by their credentials alone.
    """
    site = header_value(scope, b"sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {site.strip()[:32]}"
    origin = header_value(scope, b"origin")
    if origin is None:
        return None
    host = header_value(scope, b"host") or ""
    if _netloc(origin.partition("://")[2]) != _netloc(host) or not host:
        return f"Origin: {origin.strip()[:200]}"
    return None


def _netloc(value: str) -> str:
    """host[:port] lower-cased, without a default port and anything after the authority."""
    value = value.strip().lower().split("/", 1)[0]
    for default in (":80", ":443"):
        if value.endswith(default):
            return value[: -len(default)]
    return value


def _is_loopback_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback_host(host: str) -> bool:
    """Host header check: a page on evil.example re-bound to 127.0.0.1 still sends its own name."""
    host = host.strip().lower()
    if host.startswith("["):  # "[::1]:8000"
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.split(":")[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or _is_loopback_ip(name)


class _Signer:
    """HMAC-SHA256 over `sid.issued_at`: a stateless session cookie that expires and cannot be forged."""

    def __init__(self, token: str) -> None:
        self.key = hmac.new(token.encode(), b"kansoku dashboard session v1", hashlib.sha256).digest()

    def _mac(self, message: str) -> str:
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def sign(self, sid: str, issued_at: float) -> str:
        body = f"{sid}.{int(issued_at)}"
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str, now: float, max_age: float) -> str | None:
        body, _, mac = value.rpartition(".")
        sid, _, issued = body.partition(".")
        if not (sid and issued.isdigit() and hmac.compare_digest(mac, self._mac(body))):
            return None
        return sid if 0 <= now - int(issued) <= max_age else None

    def csrf(self, sid: str) -> str:
        return self._mac("csrf:" + sid)[:40]


def _same_secret(given: str, expected: str) -> bool:
    """Constant time, and the length of the secret does not leak either."""
    left = hashlib.sha256(given.encode()).digest()
    right = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(left, right)


class AuthMiddleware:
    """Authenticates, checks CSRF and adds security headers in front of the kansoku web app."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        *,
        exempt: Iterable[str] = ("/slack/actions",),
        public: Iterable[str] = ("/static/",),
        login_page: LoginPage | None = None,
        clock: Callable[[], float] = time.time,
        session_max_age: float = SESSION_MAX_AGE,
        state: SessionState | None = None,
    ) -> None:
        self.app = app
        secret = settings.dashboard_token
        self.token = secret.get_secret_value() if secret is not None else None
        self.signer = _Signer(self.token) if self.token else None
        self.exempt = frozenset(exempt)
        self._exempt_prefixes = tuple(entry for entry in self.exempt if entry.endswith("/"))  # check their own auth
        self.public = tuple(public)
        self.login_page = login_page or plain_login_page
        self.clock = clock
        self.session_max_age = session_max_age
        self.state = state or SessionState(clock=clock)  # revocations and keys, shared through the store
        self._failures: dict[str, list[float]] = {}

    @property
    def mode(self) -> Literal["token", "loopback"]:
        """"token" when a dashboard token is configured, else "loopback"."""
        return "token" if self.token else "loopback"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # kansoku serves no websockets
            await send({"type": "websocket.close", "code": 1008})
            return
        cookies = cookie_parser(header_value(scope, b"cookie") or "")
        secured = SecuredSend(send, scope, cookies)
        path = get_route_path(scope) or "/"
        if path in self.exempt or any(path.startswith(p) for p in self._exempt_prefixes):
            await self.app(scope, receive, secured)
            return
        if scope["method"] not in SAFE_METHODS:
            foreign = cross_origin(scope)
            if foreign is not None:  # on top of the CSRF token: a page of another origin changes nothing
                await respond(secured, 403, problem(scope, f"cross-origin request refused ({foreign})"))
                return
        if self.token and path in ("/login", "/logout"):
            await self._login_routes(path, scope, receive, secured, cookies)
            return
        access = await self._identify(scope, cookies, secured)
        if access is None:
            if self.token and path.startswith(self.public):
                await self.app(scope, receive, secured)
            else:
                await self._refuse(scope, secured, path)
            return
        if path in ("/login", "/logout"):  # loopback mode: nothing to log in or out of
            await redirect(secured, prefix(scope) + "/")
            return
        if scope["method"] not in SAFE_METHODS and access.via != "bearer":
            submitted, receive = await submitted_csrf(scope, receive)
            if submitted is None or not _same_secret(submitted, access.csrf_token):
                await respond(secured, 403, problem(scope, "CSRF token missing or wrong; reload the page"))
                return
        scope[SCOPE_KEY] = access
        await self.app(scope, receive, secured)

    async def _identify(self, scope: Scope, cookies: Mapping[str, str], send: SecuredSend) -> Access | None:
        if not self.token:
            if not is_loopback_client(scope):
                return None
            return Access("loopback", "loopback", await self._bound_csrf(send))
        auth = header_value(scope, b"authorization")
        if auth is not None:
            scheme, _, given = auth.partition(" ")
            ok = scheme.lower() == "bearer" and _same_secret(given.strip(), self.token)
            return Access("token", "bearer", "") if ok else None
        sid = await self._session(cookies)
        if sid is None or self.signer is None:
            return None
        return Access("token", "session", self.signer.csrf(sid))

    async def _bound_csrf(self, send: SecuredSend) -> str:
        """The CSRF token of a browser without a session: an HMAC of its CSRF cookie under a key the
        store keeps (token mode: the token's), so a page that sets the cookie still cannot make it."""
        cookie = send.double_submit_token()
        if self.signer is not None:
            return self.signer.csrf("form:" + cookie)
        key = await self.state.key("loopback_csrf")
        return hmac.new(key, b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()[:40]

    async def _session(self, cookies: Mapping[str, str]) -> str | None:
        value = cookies.get(SESSION_COOKIE)
        if not value or self.signer is None:
            return None
        sid = self.signer.unsign(value, self.clock(), self.session_max_age)
        return None if sid is None or await self.state.is_revoked(sid) else sid

    async def _refuse(self, scope: Scope, send: Send, path: str) -> None:
        if not self.token:
            message = ("kansoku's dashboard and API are open to loopback clients only, because "
                       "KANSOKU_DASHBOARD_TOKEN is not set. Set it to use them from another machine.")
            through = proxied(scope)
            if through is not None:
                message = (f"This request came through a proxy ({through}): behind one, loopback mode cannot "
                           "tell who the client is, so it refuses. Set KANSOKU_DASHBOARD_TOKEN to use "
                           "kansoku's dashboard and API through the proxy.")
            await respond(send, 403, problem(scope, message))
            return
        scripted = header_value(scope, b"authorization") is not None  # a wrong credential: say so
        if scope["method"] in ("GET", "HEAD") and not scripted and not wants_json(scope, path):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            await redirect(send, f"{prefix(scope)}/login?next={quote(target, safe='')}")
            return
        message = "authentication required: log in or send 'Authorization: Bearer <KANSOKU_DASHBOARD_TOKEN>'"
        await respond(send, 401, problem(scope, message), extra=[(b"www-authenticate", b'Bearer realm="kansoku"')])

    async def _login_routes(
        self, path: str, scope: Scope, receive: Receive, send: SecuredSend, cookies: Mapping[str, str]
    ) -> None:
        method = scope["method"]
        if path == "/logout":
            if method != "POST":
                await respond(send, 405, problem(scope, "log out with POST"), extra=[(b"allow", b"POST")])
                return
            await self._logout(scope, receive, send, cookies)
        elif method in ("GET", "HEAD"):
            if await self._session(cookies) is not None:
                await redirect(send, prefix(scope) + "/")
                return
            await self._login_form(scope, send, next_path=query_next(scope))
        elif method == "POST":
            await self._login(scope, receive, send)
        else:
            await respond(send, 405, problem(scope, "use GET or POST"), extra=[(b"allow", b"GET, POST")])

    async def _login_form(
        self, scope: Scope, send: SecuredSend, *, next_path: str, error: str = "", status: int = 200
    ) -> None:
        context = {"csrf_token": await self._bound_csrf(send), "error": error, "next": next_path,
                   "prefix": prefix(scope)}
        body = self.login_page(scope, context).encode()
        await respond(send, status, (b"text/html; charset=utf-8", body))

    async def _login(self, scope: Scope, receive: Receive, send: SecuredSend) -> None:
        form = await read_form(scope, receive)
        fields = {name: values[0] for name, values in (form or {}).items() if values}
        next_path = safe_next(fields.get("next", ""))
        client = str((scope.get("client") or ("?",))[0])
        if form is None or not _same_secret(fields.get(CSRF_FIELD, ""), await self._bound_csrf(send)):
            await self._login_form(scope, send, next_path=next_path, status=403,
                                   error="The form expired. Please try again.")
            return
        if self._throttled(client):
            await self._login_form(scope, send, next_path=next_path, status=429,
                                   error="Too many failed attempts. Wait a few minutes.")
            return
        assert self.token is not None and self.signer is not None
        if not _same_secret(fields.get("token", ""), self.token):
            self._failures.setdefault(client, []).append(self.clock())
            await self._login_form(scope, send, next_path=next_path, status=401, error="Wrong token.")
            return
        sid = secrets.token_urlsafe(18)
        cookie = set_cookie(scope, SESSION_COOKIE, self.signer.sign(sid, self.clock()),
                            max_age=int(self.session_max_age))
        await redirect(send, prefix(scope) + next_path, cookies=[cookie])

    async def _logout(
        self, scope: Scope, receive: Receive, send: Send, cookies: Mapping[str, str]
    ) -> None:
        sid = await self._session(cookies)
        submitted, _ = await submitted_csrf(scope, receive)
        if sid is None or self.signer is None or submitted is None or \
                not _same_secret(submitted, self.signer.csrf(sid)):
            await respond(send, 403, problem(scope, "CSRF token missing or wrong; reload the page"))
            return
        await self.state.revoke(sid, self.clock() + self.session_max_age)
        await redirect(send, prefix(scope) + "/login", cookies=[set_cookie(scope, SESSION_COOKIE, "", max_age=0)])

    def _throttled(self, client: str) -> bool:
        now = self.clock()
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures.clear()
        recent = [t for t in self._failures.get(client, []) if now - t < LOGIN_FAILURE_WINDOW]
        self._failures[client] = recent
        return len(recent) >= LOGIN_FAILURES_ALLOWED
