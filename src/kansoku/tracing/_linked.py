"""The OTLP span exporter's outages as kansoku's two lines, a metric and a /ready entry.

A dead collector makes the SDK's exporter log a retry warning and an error for every batch
(about 2,000 lines an hour for two workers). `LinkedExporter` reports each batch's outcome to a
`kansoku._outage.Link` instead: one line when exports start failing (with the SDK's reason), one
when they work again (with how many spans were not sent), `kansoku_export_up{target="otlp"}` and
`kansoku_export_lost_total`, and the runtime's informational `/ready` entry. The SDK's own lines
from its OTLP span exporters are dropped (the last one is kept as the Link's reason).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from kansoku._outage import LastLine, Link

__all__ = ["LinkedExporter", "quiet_exporter_lines"]

_EXPORTER_LOGGERS: Final = ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                            "opentelemetry.exporter.otlp.proto.grpc.exporter")


_LINES = LastLine()


def quiet_exporter_lines() -> None:
    """Install the filter on the SDK's OTLP span exporter loggers (idempotent)."""
    for name in _EXPORTER_LOGGERS:
        target = logging.getLogger(name)
        if _LINES not in target.filters:
            target.addFilter(_LINES)


class LinkedExporter(SpanExporter):
    """`exporter`, each batch's outcome told to `link`."""

    def __init__(self, exporter: SpanExporter, link: Link) -> None:
        self.exporter = exporter
        self.link = link
        quiet_exporter_lines()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export, then report success, or the failure with the SDK's reason and the spans lost."""
        result = self.exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.link.succeeded()
        else:
            self.link.failed(_LINES.take() or "the OTLP exporter reported a failure", lost=len(spans))
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.exporter.force_flush(timeout_millis)
