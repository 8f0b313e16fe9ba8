"""The one read layer over the store: every reader (JSON API, dashboard, CLI) goes through here.

Plain functions of an Engine (or a Connection), returning JSON-ready data; bad arguments raise
`ValueError` with the reason. Each read is bounded (a LIMIT, or a time window an index serves), so
pages and API calls stay fast with a million events in the store. One resolver decides what an id
means everywhere (`find_group_id`: a group id, else an event id, else a group key).

The private modules hold one subject each: `_errors` (groups: list, resolve, change status),
`_events` (one group's events), `_stats` (counts over time), `_traces`, `_services` (services and
the calls between them), `_alerts` (outbox, silences, rule state) and `_retention` (the deletes the
worker runs).
"""

from __future__ import annotations

from kansoku.store.queries._alerts import (
    DELIVERY_STATUSES,
    MAX_DELIVERIES,
    deliveries,
    notification_exists,
    recent_notifications,
    rule_states,
    silence_list,
)
from kansoku.store.queries._common import CATEGORIES, MAX_LIMIT, SEVERITIES, SORTS, STATUSES, Row
from kansoku.store.queries._errors import (
    count_by_status,
    filter_options,
    find_group_id,
    get_group,
    list_groups,
    new_groups,
    regressed_groups,
    set_status,
    top_open_groups,
)
from kansoku.store.queries._events import event_neighbours, get_event, tag_breakdown
from kansoku.store.queries._retention import enforce_retention, trim_group
from kansoku.store.queries._services import service_edges, service_summary
from kansoku.store.queries._stats import first_request_minute, hourly_counts, request_rows, statistics
from kansoku.store.queries._traces import recent_roots, slowest_roots, trace_errors, trace_spans

__all__ = [
    "CATEGORIES",
    "DELIVERY_STATUSES",
    "MAX_DELIVERIES",
    "MAX_LIMIT",
    "SEVERITIES",
    "SORTS",
    "STATUSES",
    "Row",
    "count_by_status",
    "deliveries",
    "enforce_retention",
    "event_neighbours",
    "filter_options",
    "find_group_id",
    "first_request_minute",
    "get_event",
    "get_group",
    "hourly_counts",
    "list_groups",
    "new_groups",
    "notification_exists",
    "recent_notifications",
    "recent_roots",
    "regressed_groups",
    "request_rows",
    "rule_states",
    "service_edges",
    "service_summary",
    "set_status",
    "silence_list",
    "slowest_roots",
    "statistics",
    "tag_breakdown",
    "top_open_groups",
    "trace_errors",
    "trace_spans",
    "trim_group",
]
