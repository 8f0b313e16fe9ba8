"""`POST /slack/actions`: Slack's interactivity requests ("Mark as resolved"), signature-verified.

Slack signs each request: ``X-Slack-Signature: v0=<hex>`` with the hex digest of
HMAC-SHA256(signing secret, ``"v0:{X-Slack-Request-Timestamp}:{raw body}"``). The route checks the
signature over the raw bytes before parsing anything, compares in constant time, refuses
timestamps more than five minutes away, and refuses a signature it has already accepted (a replay
inside the window). Then it hands the group key of a `kansoku_resolve` button to `resolve`.

The body is read with its limit applied while reading (a declared Content-Length over it is
refused before anything is read), a signed payload of another shape is a 400, and a group that
does not exist gets a reply saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kansoku.alerts.channels.slack import RESOLVE_ACTION
from kansoku.logs import get_logger
from kansoku.typing import Clock
from kansoku.web._auth_http import read_body

__all__ = ["SlackVerifier", "route"]

log = get_logger("kansoku.alerts")
WINDOW: Final = 300.0
_MAX_BODY: Final = 64 * 1024


class SlackVerifier:
    """Checks Slack's v0 request signatures and remembers accepted ones for the replay window."""

    def __init__(self, signing_secret: str, *, clock: Clock = time.time, window: float = WINDOW) -> None:
        self._secret = signing_secret.encode()
        self.clock = clock
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def expected(self, timestamp: str, body: bytes) -> str:
        """The signature Slack sends for this timestamp and body."""
        base = b"v0:" + timestamp.encode() + b":" + body
        return "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """None when the request is genuine and new; otherwise why it is refused."""
        if not timestamp or not signature:
            return "missing signature headers"
        try:
            sent = int(timestamp)
        except ValueError:
            return "bad timestamp"
        now = self.clock()
        if abs(now - sent) > self.window:
            return "stale timestamp"
        if not hmac.compare_digest(self.expected(timestamp, body).encode(), signature.encode()):
            return "bad signature"
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * self.window:
                self._seen.popitem(last=False)
            if signature in self._seen:
                return "replayed request"
            self._seen[signature] = now
        return None


def route(signing_secret: str, resolve: Callable[[str, str], Any], *, clock: Clock = time.time,
          path: str = "/slack/actions") -> Route:
    """The Slack actions route; `resolve(group_key, user)` (sync or async) resolves the group and
    returns False when there is no such group."""
    verifier = SlackVerifier(signing_secret, clock=clock)

    async def actions(request: Request) -> Response:
        # Read with the limit while reading: nobody unauthenticated makes the process hold a big body.
        declared = request.headers.get("content-length", "")
        body = None if declared.isdigit() and int(declared) > _MAX_BODY else await read_body(
            request.receive, _MAX_BODY)
        if body is None:
            return JSONResponse({"error": f"body too large (over {_MAX_BODY} bytes) or incomplete"},
                                status_code=413)
        problem = verifier.verify(request.headers.get("x-slack-request-timestamp"),
                                  request.headers.get("x-slack-signature"), body)
        if problem is not None:
            log.warning("slack action refused", reason=problem, category="security")
            return JSONResponse({"error": problem}, status_code=401)
        parsed = _parse(body)
        if isinstance(parsed, str):
            return JSONResponse({"error": parsed}, status_code=400)
        user, groups = parsed
        resolved: list[str] = []
        unknown: list[str] = []
        for group in groups:
            found = await _call(resolve, group, user)
            (unknown if found is False else resolved).append(group)
        reply: dict[str, Any] = {"resolved": resolved}
        if unknown:
            reply["unknown"] = unknown
            reply["text"] = "No error group " + ", ".join(unknown) + ": nothing was resolved for it."
        return JSONResponse(reply)

    return Route(path, actions, methods=["POST"])


def _parse(body: bytes) -> tuple[str, list[str]] | str:
    """(user, group keys of the resolve buttons) of a signed body, or why its shape is refused."""
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        return "expected a form field `payload` holding JSON"
    if not isinstance(payload, dict):
        return "the payload must be a JSON object"
    who = payload.get("user") or {}
    actions = payload.get("actions") or []
    if not isinstance(who, dict) or not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        return "the payload's `user` must be an object and its `actions` a list of objects"
    user = str(who.get("username") or who.get("id") or "slack")[:128]
    groups = [action["value"][:256] for action in actions
              if action.get("action_id") == RESOLVE_ACTION and isinstance(action.get("value"), str)]
    return user, groups


async def _call(resolve: Callable[[str, str], Any], group_key: str, user: str) -> Any:
    if inspect.iscoroutinefunction(resolve):
        return await resolve(group_key, user)
    return await run_in_threadpool(resolve, group_key, user)
