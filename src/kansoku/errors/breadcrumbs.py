"""The last log records of each request, kept so that an error event can show what led to it."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict, deque
from typing import Any, Final

__all__ = ["Breadcrumbs"]

MAX_MESSAGE: Final = 256


class Breadcrumbs:
    """A bounded map request id -> the last `per_request` records (least recently used out first).

    Thread-safe and cheap: one lock, no I/O; records are redacted later, with the event.
    """

    def __init__(self, per_request: int = 20, max_requests: int = 1_000) -> None:
        self.per_request = per_request
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._by_request: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        if hasattr(os, "register_at_fork"):  # a lock held by another thread at fork stays held
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _reset(ref))

    def add(self, request_id: str, crumb: dict[str, Any]) -> None:
        """Remember one record of a request."""
        with self._lock:
            crumbs = self._by_request.get(request_id)
            if crumbs is None:
                crumbs = self._by_request[request_id] = deque(maxlen=self.per_request)
                if len(self._by_request) > self.max_requests:
                    self._by_request.popitem(last=False)
            else:
                self._by_request.move_to_end(request_id)
            crumbs.append(crumb)

    def get(self, request_id: str) -> list[dict[str, Any]]:
        """The records of a request, oldest first (a copy)."""
        with self._lock:
            crumbs = self._by_request.get(request_id)
            return list(crumbs) if crumbs else []

    def clear(self) -> None:
        """Forget every request's records."""
        with self._lock:
            self._by_request.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_request)


def _reset(ref: weakref.ReferenceType[Breadcrumbs]) -> None:
    crumbs = ref()
    if crumbs is not None:
        crumbs._lock = threading.Lock()
        crumbs._by_request = OrderedDict()
