"""Error tracking (chapter 8.4): capture, grouping, classification, delivery to the store.

    tracker = ErrorTracker(settings, store.engine)
    tracker.start()
    event_id = tracker.capture(exc, request=..., user={"id": uid}, tags={"feature": "checkout"})
"""

from __future__ import annotations

from kansoku.errors.breadcrumbs import Breadcrumbs
from kansoku.errors.classify import CATEGORIES, SEVERITIES, Classifier
from kansoku.errors.collector import ErrorCollector
from kansoku.errors.fingerprint import Fingerprinter, FingerprintRule, normalise_message
from kansoku.errors.hooks import (
    install_asyncio_handler,
    install_excepthook,
    install_hooks,
    install_threading_excepthook,
)
from kansoku.errors.tracker import EVENT_ID_ATTRIBUTE, ErrorListener, ErrorTracker

__all__ = [
    "CATEGORIES",
    "EVENT_ID_ATTRIBUTE",
    "SEVERITIES",
    "Breadcrumbs",
    "Classifier",
    "ErrorCollector",
    "ErrorListener",
    "ErrorTracker",
    "FingerprintRule",
    "Fingerprinter",
    "install_asyncio_handler",
    "install_excepthook",
    "install_hooks",
    "install_threading_excepthook",
    "normalise_message",
]
