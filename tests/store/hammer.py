"""One process of the concurrency test: 4 threads write one group, directly and through a tracker.

Usage: python hammer.py URL GO_FILE PROCESS_INDEX BATCHES BATCH_SIZE CAPTURES
Each thread has its own EventWriter (its own transactions) and also captures through the
process's ErrorTracker; the parent checks that the stored count is exactly the sum.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from kansoku.errors import ErrorTracker
from kansoku.errors.fingerprint import group_key
from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.store.writer import EventWriter
from kansoku.typing import ErrorEvent

THREADS = 4
SERVICE, ENVIRONMENT = "hammer", "test"
KEY = group_key(SERVICE, ENVIRONMENT, ["custom:hammer"])


def event(process: int, thread: int, n: int) -> ErrorEvent:
    return ErrorEvent(
        event_id=f"{process:04x}{thread:04x}{n:024x}", timestamp=time.time(), exception_type="RuntimeError",
        message="hammered", group_key=KEY, fingerprint_parts=["custom:hammer"], severity="low",
        category="application", service=SERVICE, environment=ENVIRONMENT, user={"id": f"u{n % 7}"},
    )


def main() -> None:
    url, go, process = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batches, size, captures = (int(a) for a in sys.argv[4:7])
    settings = load_settings(database_url=url, service_name=SERVICE, environment=ENVIRONMENT,
                             max_events_per_group=10**7)
    store = Store(url)
    tracker = ErrorTracker(settings, store.engine)
    tracker.start()
    while not os.path.exists(go):
        time.sleep(0.005)

    def work(thread: int) -> None:
        writer = EventWriter(store.engine, max_events_per_group=10**7)
        for b in range(batches):
            writer.write([event(process, thread, b * size + i) for i in range(size)])
            if b < captures:
                try:
                    raise RuntimeError("hammered")
                except RuntimeError as exc:
                    accepted = tracker.capture(exc, fingerprint=["hammer"], user={"id": f"u{b % 7}"})
                if not accepted:
                    raise SystemExit("the tracker dropped an event")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.close(timeout=60), tracker.stats()
    store.close()
    print("done", process, flush=True)


if __name__ == "__main__":
    main()
