"""The ASGI plumbing of `kansoku.web.auth`: headers, cookies, small responses and form bodies.

Nothing here decides who gets in; `auth.AuthMiddleware` does. These are the pieces it needs to
speak raw ASGI without a framework in front of the app it protects.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
from starlette._utils import get_route_path

from kansoku.typing import Message, Receive, Scope, Send

__all__ = [
    "CSP",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SECURITY_HEADERS",
    "SecuredSend",
    "header_value",
    "plain_login_page",
    "prefix",
    "problem",
    "query_next",
    "read_body",
    "read_form",
    "redirect",
    "respond",
    "safe_next",
    "set_cookie",
    "submitted_csrf",
    "wants_json",
]

CSRF_COOKIE: Final = "kansoku_csrf"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
MAX_FORM_BYTES: Final = 256 * 1024
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class SecuredSend:
    """Wraps `send`: security headers on every response, and the double-submit CSRF cookie if new."""

    def __init__(self, send: Send, scope: Scope, cookies: Mapping[str, str]) -> None:
        self._send = send
        self._scope = scope
        self._csrf = cookies.get(CSRF_COOKIE, "")
        self._new_csrf = False

    def double_submit_token(self) -> str:
        """The browser's CSRF cookie value, made (and set on this response) when it has none."""
        if len(self._csrf) < 20:
            self._csrf = secrets.token_urlsafe(24)
            self._new_csrf = True
        return self._csrf

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
            if b"cache-control" not in present:  # pages hold error data: keep them out of caches
                headers.append((b"cache-control", b"no-store"))
            if self._new_csrf:
                headers.append((b"set-cookie", set_cookie(self._scope, CSRF_COOKIE, self._csrf)))
            message = {**message, "headers": headers}
        await self._send(message)


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def prefix(scope: Scope) -> str:
    """Where the web app is mounted ("/kansoku"), for links and cookie paths."""
    return str(scope.get("root_path", "")).rstrip("/")


def wants_json(scope: Scope, path: str) -> bool:
    """API paths and clients that ask for JSON get JSON refusals; browsers get pages."""
    return path.startswith("/api/") or "application/json" in (header_value(scope, b"accept") or "")


def problem(scope: Scope, message: str) -> tuple[bytes, bytes]:
    """A refusal body: JSON for API clients, a tiny HTML page for browsers."""
    if wants_json(scope, get_route_path(scope) or "/"):
        return b"application/json", orjson.dumps({"error": message})
    page = (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>kansoku</title>'
            f"<main><h1>kansoku</h1><p>{html.escape(message)}</p></main></html>")
    return b"text/html; charset=utf-8", page.encode()


async def respond(
    send: Send, status: int, content: tuple[bytes, bytes], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a whole response: (media type, body) and any extra headers."""
    media_type, body = content
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def redirect(send: Send, location: str, cookies: list[bytes] | None = None) -> None:
    """303 See Other to `location`, setting `cookies`."""
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    headers += [(b"set-cookie", cookie) for cookie in cookies or []]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def set_cookie(scope: Scope, name: str, value: str, *, max_age: int | None = None) -> bytes:
    """A Set-Cookie value: HttpOnly, SameSite=Strict, scoped to the prefix, Secure over HTTPS."""
    parts = [f"{name}={value}", f"Path={prefix(scope) or '/'}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if scope.get("scheme") == "https":
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def safe_next(value: str) -> str:
    """Only a path inside the app: no scheme, no host, no '//' or backslash (no open redirect)."""
    if (not value.startswith("/") or value.startswith(("//", "/login", "/logout")) or "\\" in value
            or len(value) > 2000 or any(ord(ch) < 32 for ch in value)):
        return "/"
    return value


def query_next(scope: Scope) -> str:
    """The `next` query parameter, made safe."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return safe_next((query.get("next") or [""])[0])


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes or on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_form(scope: Scope) -> bool:
    content_type = (header_value(scope, b"content-type") or "").split(";")[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded"


async def read_form(scope: Scope, receive: Receive) -> dict[str, list[str]] | None:
    """A urlencoded form body as lists of values; None for any other body."""
    if not _is_form(scope):
        return None
    body = await read_body(receive, MAX_FORM_BYTES)
    return None if body is None else parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def submitted_csrf(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The CSRF token from the header, else from a urlencoded form body (then replayed to the app)."""
    header = header_value(scope, CSRF_HEADER.encode())
    if header:
        return header, receive
    if not _is_form(scope):
        return None, receive
    body = await read_body(receive, MAX_FORM_BYTES)
    if body is None:
        return None, receive
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    values = form.get(CSRF_FIELD)
    return (values[0] if values else None), replay


def plain_login_page(scope: Scope, context: Mapping[str, Any]) -> str:
    """A bare login form, used when the dashboard's templates are not wired in."""
    esc = html.escape
    error = f'<p role="alert">{esc(str(context["error"]))}</p>' if context["error"] else ""
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>kansoku: log in</title><main>'
        f"<h1>kansoku</h1>{error}"
        f'<form method="post" action="{esc(context["prefix"])}/login">'
        f'<input type="hidden" name="csrf_token" value="{esc(context["csrf_token"])}">'
        f'<input type="hidden" name="next" value="{esc(context["next"])}">'
        '<label for="token">Dashboard token</label> '
        '<input id="token" name="token" type="password" autocomplete="current-password" required> '
        '<button type="submit">Log in</button></form></main></html>'
    )
