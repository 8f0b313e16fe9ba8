"""Where kansoku sends to (Sentry, an OTLP collector): one line when it goes down, one when it is back.

A destination that stops answering must not become a stream of retry warnings (one per event
and attempt) nor silence. `Link` turns the outcome of each send into at most two lines per outage,
"unreachable" with the first error and "reachable again" with what was not sent meanwhile, and
keeps the numbers for kansoku's metrics (`kansoku_export_up`, `kansoku_export_lost_total`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Protocol

__all__ = ["LastLine", "Link", "live_links"]

_ALL: weakref.WeakSet[Link] = weakref.WeakSet()


class _Log(Protocol):
    def warning(self, event: str | None = None, **kw: Any) -> Any: ...
    def info(self, event: str | None = None, **kw: Any) -> Any: ...


class LastLine(logging.Filter):
    """Drops an SDK exporter's own lines (one per batch and retry), keeping the last one's text
    for the Link's "unreachable" line."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        self.last = record.getMessage()[:300]
        return False

    def take(self) -> str:
        """The last line's text, once."""
        last, self.last = self.last, ""
        return last


def live_links() -> list[Link]:
    """Every Link of this process that still exists (for kansoku's metrics)."""
    return list(_ALL)


class Link:
    """The health of one destination, from the outcomes its sender reports."""

    def __init__(self, target: str, log: _Log, *, clock: Any = time.time) -> None:
        self.target = target
        self.lost = 0  # items not sent, ever
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._down: tuple[float, str, int] | None = None  # since, first error, lost before it
        _ALL.add(self)

    @property
    def up(self) -> bool:
        """False while the last send failed."""
        return self._down is None

    def failed(self, error: str, *, lost: int = 0) -> None:
        """A send failed; `lost` items will not be sent. The first failure of an outage is logged."""
        with self._lock:
            first = self._down is None
            if first:
                self._down = (self._clock(), error, self.lost)
            self.lost += lost
        if first:
            self._log.warning(f"{self.target} unreachable", category="system", target=self.target,
                              error=error[:300], next="not sent items are counted in kansoku_export_lost_total")

    def count_lost(self, n: int = 1) -> None:
        """Items not sent for another reason (a full queue, a rate limit): counted, not logged."""
        with self._lock:
            self.lost += n

    def succeeded(self) -> None:
        """A send went through: the end of an outage is logged, with what it cost."""
        with self._lock:
            down, self._down = self._down, None
        if down is not None:
            since, error, lost_before = down
            self._log.info(f"{self.target} reachable again", category="system", target=self.target,
                           down_seconds=round(self._clock() - since, 3), not_sent=self.lost - lost_before,
                           first_error=error[:300])

    def problem(self) -> str | None:
        """None while up, else since when it is down and why (a readiness check's answer)."""
        down = self._down
        if down is None:
            return None
        return f"{self.target} unreachable for {self._clock() - down[0]:.0f}s: {down[1][:200]}"
