"""Alerting (chapter 8.4): rules, suppression shared through the store, a durable outbox, channels.

`AlertEngine` listens to the error tracker and evaluates HTTP rules; `Dispatcher` delivers the
outbox; `send_test` backs `kansoku alerts test CHANNEL`.
"""

from __future__ import annotations

from kansoku.alerts.dispatcher import Dispatcher, TestResult, send_test
from kansoku.alerts.engine import AlertEngine
from kansoku.alerts.rules import AlertingConfig, AlertRule, load_alerting, parse_alerting

__all__ = [
    "AlertEngine",
    "AlertRule",
    "AlertingConfig",
    "Dispatcher",
    "TestResult",
    "load_alerting",
    "parse_alerting",
    "send_test",
]
