"""What every channel shares: the `Channel` protocol, `DeliveryError`, HTTP posting, recipients."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from kansoku.alerts.render import Notification

if TYPE_CHECKING:
    # Not imported at run time here: importing the alert path (the dispatcher, at start-up) must
    # not cost httpx (about 4 MB and 40 ms); the channels import it when they are built.
    import httpx

__all__ = [
    "Channel",
    "DeliveryError",
    "check_response",
    "name_list",
    "post",
    "retry_after_seconds",
    "send_each",
]

USER_AGENT: Final = "kansoku-alerts/0.1"


class Channel(Protocol):
    """What the dispatcher needs of a channel."""

    name: str
    timeout: float

    async def send(self, note: Notification) -> str | None:
        """Deliver `note`; return a provider reference or None; raise `DeliveryError` on failure.

        A channel with several recipients skips those in `note["done"]` and appends to that list
        each one it reaches (see `send_each`); a single-target channel ignores it.
        """
        ...


class DeliveryError(Exception):
    """A delivery failed. `permanent`: retrying will not help (a 4xx other than 408/429)."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None,
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.permanent = permanent


class _HideUrls(logging.Filter):
    """Masks alert destinations in httpx's request log lines (a Slack webhook URL is a secret)."""

    def __init__(self) -> None:
        super().__init__("kansoku-alert-urls")
        self.prefixes: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.prefixes and isinstance(record.args, tuple):
            record.args = tuple(self._mask(arg) for arg in record.args)
        return True

    def _mask(self, arg: object) -> object:
        import httpx  # loaded already: this filter sits on httpx's own logger

        text = str(arg) if isinstance(arg, httpx.URL | str) else None
        if text is not None and any(text.startswith(prefix) for prefix in self.prefixes):
            parts = urlsplit(text)
            return f"{parts.scheme}://{parts.hostname}/[alert channel]"
        return arg


_HIDE: Final = _HideUrls()


def hide_in_logs(url: str) -> str:
    """Keep `url` (and anything under it) out of httpx's log lines; returns it."""
    if not _HIDE.prefixes:
        logging.getLogger("httpx").addFilter(_HIDE)
    _HIDE.prefixes.add(url)
    return url


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_response(response: httpx.Response, service: str) -> None:
    """Raise `DeliveryError` for a non-2xx answer (4xx permanent but for 408 and 429)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = response.text[:300].replace("\n", " ").strip()
    permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
    raise DeliveryError(
        f"{service} answered HTTP {status}" + (f": {body}" if body else ""),
        status_code=status, retry_after=retry_after_seconds(response.headers.get("retry-after")),
        permanent=permanent,
    )


async def post(
    client: httpx.AsyncClient, url: str, service: str, *, timeout: float, **kwargs: Any  # noqa: ASYNC109
) -> httpx.Response:
    """POST and check the status; transport errors become `DeliveryError` without the URL."""
    import httpx

    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    try:
        response = await client.post(url, headers=headers, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{service}: timed out after {timeout:g} s ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{service}: {type(exc).__name__}: {_reason(exc)}") from None
    check_response(response, service)
    return response


def _reason(exc: BaseException) -> str:
    # httpx messages are the OS error ("[Errno 111] Connection refused"), never the URL.
    text = str(exc) or type(exc).__name__
    return text.split(" for url ")[0][:200]


async def send_each(
    note: Notification, recipients: Sequence[str], service: str,
    send_one: Callable[[str], Awaitable[str | None]],
) -> str | None:
    """Send to each recipient not in `note["done"]`, appending to it each one reached; first reference.

    The list is appended to at once, not returned at the end, so the dispatcher still sees what was
    reached when the attempt times out or is cut short. When the server answered for one recipient
    (a refused address, a 5xx for one number), the others are still tried; when it could not be
    reached at all (no status code) the rest are left for the retry. One `DeliveryError` then names
    the recipients not reached; it is permanent only if every failure was.
    """
    done = note["done"]
    todo = [r for r in recipients if r not in done]
    failures: list[tuple[str, DeliveryError]] = []
    untried: list[str] = []
    reached: list[str] = []
    first: str | None = None
    for index, recipient in enumerate(todo):
        try:
            ref = await send_one(recipient)
        except DeliveryError as exc:
            failures.append((recipient, exc))
            if exc.status_code is None:  # no answer from the server: the next ones would wait the same
                untried = todo[index + 1:]
                break
            continue
        done.append(recipient)
        reached.append(recipient)
        first = first or ref
    if failures:
        raise _not_reached(service, len(todo), failures, untried, reached)
    return first


def name_list(recipients: Sequence[str], limit: int = 10) -> str:
    """Recipients for an error text: the first `limit`, then how many more."""
    more = f" and {len(recipients) - limit} more" if len(recipients) > limit else ""
    return ", ".join(recipients[:limit]) + more


def _not_reached(
    service: str, total: int, failures: Sequence[tuple[str, DeliveryError]], untried: Sequence[str],
    reached: Sequence[str],
) -> DeliveryError:
    """One error for an attempt that missed some recipients (shown in the delivery log)."""
    missed = len(failures) + len(untried)
    text = f"{service}: {missed} of {total} recipients not reached: "
    text += "; ".join(f"{who}: {exc}" for who, exc in failures[:5])
    if len(failures) > 5:
        text += f"; and {len(failures) - 5} more failed"
    if untried:
        text += f"; not tried: {name_list(untried)}"
    if reached:
        text += f"; reached: {name_list(reached)}"
    waits = [exc.retry_after for _, exc in failures if exc.retry_after is not None]
    return DeliveryError(
        text[:1500], status_code=failures[0][1].status_code, retry_after=max(waits) if waits else None,
        permanent=all(exc.permanent for _, exc in failures),
    )


def _fits(kind: str, recipient: str) -> bool:
    if kind == "email":
        return "@" in recipient
    if kind == "sms":
        return recipient.startswith("+")
    return "@" not in recipient and not recipient.startswith("+")  # slack: channel ids and #names


def recipients_for(kind: str, rule_recipients: list[str], default: tuple[str, ...]) -> list[str]:
    """The rule's recipients that fit this channel kind, else the channel's own."""
    chosen = [r for r in rule_recipients if _fits(kind, r)]
    return chosen or list(default)
