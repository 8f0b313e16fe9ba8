"""Demo traffic: a realistic mix of calls to the demo app, failures included, with a progress line.

The mix is weighted like a small shop: browsing and orders most of the time, a payment now and
then, occasional bad input, an over-limit payment, a slow report, a missing page. Requests are
started at a steady rate (each in its own task, a bounded number in flight) so that a slow
endpoint does not slow the whole stream down.

Run alone against any deployment of the demo app::

    python -m kansoku.demo.traffic --url http://127.0.0.1:8000 --rate 10 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

__all__ = ["Call", "TrafficStats", "drive", "main", "next_call"]

PRODUCTS = ("keyboard", "mouse", "monitor", "laptop", "headset", "webcam")
_MAX_IN_FLIGHT = 32


@dataclass(frozen=True)
class Call:
    """One request of the mix: what to send, and the route template it exercises."""

    method: str
    path: str
    route: str
    body: Any = None


@dataclass
class TrafficStats:
    """What the generator sent and got back, by route template and by status."""

    started: float = field(default_factory=time.monotonic)
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    by_route: collections.Counter[str] = field(default_factory=collections.Counter)
    by_route_status: collections.Counter[str] = field(default_factory=collections.Counter)
    connection_errors: int = 0

    @property
    def sent(self) -> int:
        """Requests that got a response."""
        return sum(self.by_status.values())

    def record(self, call: Call, status: int) -> None:
        """Count one response."""
        self.by_status[status] += 1
        self.by_route[f"{call.method} {call.route}"] += 1
        self.by_route_status[f"{call.method} {call.route} {status}"] += 1

    def line(self) -> str:
        """A one-line progress summary."""
        classes = collections.Counter(f"{status // 100}xx" for status in self.by_status.elements())
        elapsed = max(time.monotonic() - self.started, 1e-9)
        parts = " · ".join(f"{name} {classes[name]}" for name in ("2xx", "4xx", "5xx") if classes[name])
        return f"traffic: {self.sent} requests ({parts or 'none yet'}), {self.sent / elapsed:.1f}/s"

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data."""
        return {
            "requests": self.sent,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_route": dict(sorted(self.by_route.items())),
            "by_route_status": dict(sorted(self.by_route_status.items())),
            "connection_errors": self.connection_errors,
        }


class _State:
    """Ids the app handed out, so later calls can refer to real users and orders."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.orders: list[str] = []
        self.emails: list[str] = []
        self.serial = 0

    def email(self) -> str:
        self.serial += 1
        return f"customer{self.serial}@example.com"


def _user_calls(rng: random.Random, state: _State) -> Call:
    roll = rng.random()
    if roll < 0.6 or not state.users:
        email = state.emails[0] if state.emails and roll < 0.05 else state.email()  # a duplicate now and then
        source = rng.choice(["web", "mobile", "partner"])
        return Call("POST", "/users", "/users", {"email": email, "name": f"Customer {state.serial}", "source": source})
    if roll < 0.9:
        return Call("GET", f"/users/{rng.choice(state.users)}", "/users/{user_id}")
    return Call("GET", f"/users/{rng.getrandbits(64):016x}", "/users/{user_id}")  # not found


def _order_calls(rng: random.Random, state: _State) -> Call:
    roll = rng.random()
    if roll < 0.25:
        return Call("GET", "/products", "/products")
    if roll < 0.35 and state.orders:
        return Call("GET", f"/orders/{rng.choice(state.orders)}", "/orders/{order_id}")
    count = 40 if roll > 0.97 else rng.randint(1, 3)  # a huge quantity: out of stock
    items = [{"product_id": rng.choice(PRODUCTS), "quantity": count} for _ in range(rng.randint(1, 3))]
    body = {"items": items, "currency": rng.choice(["USD", "USD", "EUR", "JPY"]), "channel": rng.choice(["web", "api"])}
    if state.users:
        body["user_id"] = rng.choice(state.users)
    return Call("POST", "/orders", "/orders", body)


def _payment_call(rng: random.Random, state: _State) -> Call:
    roll = rng.random()
    card = "4111 1111 1111 1111"
    amount = round(rng.uniform(5, 800), 2)
    if roll < 0.08:
        amount = -round(rng.uniform(1, 50), 2)  # validation error: not positive
    elif roll < 0.14:
        card = ""  # validation error: no card
    elif roll < 0.24:
        amount = round(rng.uniform(10_001, 50_000), 2)  # over the limit: an unhandled error, 500
    body = {"amount": amount, "currency": "USD", "card_number": card}
    return Call("POST", "/payments", "/payments", body)


def _data_call(rng: random.Random, state: _State) -> Call:
    size = rng.randint(20, 150)
    items: list[dict[str, Any]] = []
    for index in range(size):
        data: Any = {"value": rng.randint(0, 1000), "tag": rng.choice(["a", "b", "c"])}
        if rng.random() < 0.02:
            data = "corrupted"  # the processor logs it as a failed item and goes on
        items.append({"id": index, "data": data})
    return Call("POST", "/data/process", "/data/process", items)


_MIX: tuple[tuple[float, Callable[[random.Random, _State], Call]], ...] = (
    (0.30, _user_calls),
    (0.34, _order_calls),
    (0.22, _payment_call),
    (0.08, _data_call),
    (0.03, lambda rng, state: Call("GET", "/reports/daily", "/reports/daily")),
    (0.03, lambda rng, state: Call("GET", f"/no-such-page/{rng.randint(1, 99)}", "unmatched")),
)


def next_call(rng: random.Random, state: _State) -> Call:
    """Pick the next request of the mix."""
    roll = rng.random() * sum(weight for weight, _ in _MIX)
    for weight, make in _MIX:
        roll -= weight
        if roll <= 0:
            return make(rng, state)
    return _MIX[0][1](rng, state)


async def _send(client: httpx.AsyncClient, call: Call, state: _State, stats: TrafficStats) -> None:
    try:
        response = await client.request(call.method, call.path, json=call.body)
    except httpx.TransportError:
        stats.connection_errors += 1  # the server is stopping, or not up yet
        return
    stats.record(call, response.status_code)
    if response.status_code in (200, 201) and call.method == "POST":
        data = response.json()
        if call.route == "/users":
            state.users.append(data["id"])
            state.emails.append(data["email"])
        elif call.route == "/orders":
            state.orders.append(data["id"])


async def drive(
    base_url: str,
    *,
    rate: float = 10.0,
    should_stop: Callable[[], bool] = lambda: False,
    stats: TrafficStats | None = None,
    progress: TextIO | None = sys.stderr,
    duration: float | None = None,
    seed: int | None = None,
    redraw: bool | None = None,
) -> TrafficStats:
    """Send the mix to `base_url` at `rate` requests/s until `should_stop()` or `duration` is up.

    `redraw`: redraw one progress line in place (default: when `progress` is a terminal).
    """
    stats = stats if stats is not None else TrafficStats()
    rng, state = random.Random(seed), _State()
    in_flight: set[asyncio.Task[None]] = set()
    deadline = None if duration is None else time.monotonic() + duration
    display = _Progress(progress, stats, redraw)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        next_at = time.monotonic()
        while not should_stop() and (deadline is None or time.monotonic() < deadline):
            if len(in_flight) < _MAX_IN_FLIGHT:
                task = asyncio.create_task(_send(client, next_call(rng, state), state, stats))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            display.tick()
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight)  # let the last requests finish: their results are counted
    display.done()
    return stats


class _Progress:
    """Redraws one line on a terminal; elsewhere prints a line every few seconds."""

    def __init__(self, stream: TextIO | None, stats: TrafficStats, redraw: bool | None) -> None:
        self.stream, self.stats = stream, stats
        self.tty = bool(stream is not None and stream.isatty()) if redraw is None else redraw
        self.every = 0.5 if self.tty else 5.0
        self.last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if self.stream is None or now - self.last < self.every:
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.stats.line())
        else:
            self.stream.write(self.stats.line() + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.stream is not None:
            self.stream.write(("\r\x1b[2K" if self.tty else "") + self.stats.line() + "\n")
            self.stream.flush()


def main(argv: list[str] | None = None) -> None:
    """`python -m kansoku.demo.traffic`: drive the demo app at --url."""
    parser = argparse.ArgumentParser(prog="python -m kansoku.demo.traffic", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the demo app")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(drive(args.url.rstrip("/"), rate=args.rate, duration=args.duration))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
