"""Ingested records into kansoku's parts: grouping and classification, then the bounded queues.

An ingested event is grouped by kansoku's own rules (`Fingerprinter`: type and in-app frames, else
the normalised message; the SDK's `fingerprint`, `{{ default }}` included, when it sent one;
the configured fingerprint rules) within its project, service and environment, classified by the
configured severity and category rules, then queued on the `ErrorTracker` like a captured
exception. Spans and log records are queued on their sinks (`ingest.sink`); monitor check-ins are
written to the store before the answer (`accept_checkins`, a few per job run). `accept` and
`accept_logs` raise IngestError 503 when a queue is full, so a sender retries rather than believing
a record was kept.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Engine

from kansoku.errors.classify import Facts
from kansoku.errors.fingerprint import ChainFrames, Fingerprinter, parse_rules
from kansoku.errors.tracker import ErrorTracker
from kansoku.ingest.body import IngestError
from kansoku.ingest.checkins import CheckIn, record_checkins
from kansoku.ingest.sink import Sink
from kansoku.typing import ErrorEvent

__all__ = ["Ingestor", "chain_of"]

_CAMEL: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def chain_of(event: ErrorEvent) -> list[ChainFrames]:
    """What grouping needs of an event's exceptions: type and (module or file, function, in_app).

    A message event (no exception) is its type ("Message") alone, so its message decides.
    """
    chain = [ChainFrames(e.get("type", "Error"),
                         [(f.get("module") or f.get("filename", ""), f.get("function", ""), bool(f.get("in_app")))
                          for f in e.get("frames", [])])
             for e in event.get("exceptions", [])]
    return chain or [ChainFrames(event.get("exception_type", "Error"), [])]


def facts_of_event(event: ErrorEvent) -> Facts:
    """The classification facts of an event that has no Python exception object."""
    qualified = event.get("exception_type", "Error")
    bare = qualified.rsplit(".", 1)[-1]
    words = tuple(w.lower() for w in _CAMEL.findall(bare))
    status = (event.get("request") or {}).get("status_code")
    return Facts(frozenset({qualified, bare}), words, event.get("message", "")[:2000].lower(),
                 status if isinstance(status, int) else None)


class Ingestor:
    """Groups, classifies and queues what the ingest endpoints decoded."""

    def __init__(self, tracker: ErrorTracker, spans: Sink, logs: Sink, engine: Engine) -> None:
        self.tracker = tracker
        self.spans = spans
        self.logs = logs
        self.engine = engine
        self._rules = parse_rules(tracker.settings.errors.get("fingerprint_rules", ()))
        self._fingerprinters: dict[tuple[str, str, str], Fingerprinter] = {}
        self.counts: Counter[str] = Counter()

    def _fingerprinter(self, event: ErrorEvent) -> Fingerprinter:
        key = (event.get("project", ""), event.get("service", ""), event.get("environment", ""))
        found = self._fingerprinters.get(key)
        if found is None:
            if len(self._fingerprinters) >= 1000:
                self._fingerprinters.clear()
            # The project is part of the key's scope: two projects never share a group.
            found = Fingerprinter(f"{key[0]}\x00{key[1]}", key[2], self._rules,
                                  scrub=self.tracker.redactor.redact_text)
            self._fingerprinters[key] = found
        return found

    def prepare(self, event: ErrorEvent, custom: Sequence[str] | None) -> ErrorEvent:
        """The event with its group key, fingerprint parts, severity and category."""
        key, parts = self._fingerprinter(event).compute(chain_of(event), event.get("message", ""),
                                                        list(custom) if custom else None)
        event["group_key"], event["fingerprint_parts"] = key, parts
        if custom:
            event["fingerprint"] = list(custom)
        facts = facts_of_event(event)
        classifier = self.tracker.classifier
        event["severity"] = classifier.severity(facts)  # type: ignore[typeddict-item]
        event["category"] = classifier.category(facts)
        return event

    def accept(self, events: Sequence[tuple[ErrorEvent, Sequence[str] | None]],
               spans: Sequence[dict[str, Any]], ignored: Counter[str] | None = None) -> None:
        """Queue the records; IngestError 503 (with Retry-After) when a queue cannot take them."""
        if spans and not self.spans.submit(spans):
            self.counts["spans_refused"] += len(spans)
            raise IngestError(503, "span queue full: retry later", {"Retry-After": "5"})
        self.counts["spans"] += len(spans)
        for event, custom in events:
            if not self.tracker.submit_event(self.prepare(event, custom)):
                self.counts["events_refused"] += 1
                raise IngestError(503, "event queue full: retry later", {"Retry-After": "5"})
            self.counts["events"] += 1
        if ignored:
            self.counts.update({f"ignored:{k}": v for k, v in ignored.items()})

    def accept_logs(self, records: Sequence[dict[str, Any]]) -> None:
        """Queue log store records; IngestError 503 (with Retry-After) when the queue cannot take them."""
        if records and not self.logs.submit(records):
            self.counts["logs_refused"] += len(records)
            raise IngestError(503, "log queue full: retry later", {"Retry-After": "5"})
        self.counts["logs"] += len(records)

    def accept_checkins(self, checkins: Sequence[CheckIn]) -> None:
        """Record monitor check-ins in the store (blocking); IngestError 503 when the store fails."""
        unknown = record_checkins(self.engine, checkins, time.time())
        self.counts["checkins"] += len(checkins) - unknown
        self.counts["checkins_unknown_monitor"] += unknown
