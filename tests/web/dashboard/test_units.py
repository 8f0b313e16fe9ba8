"""The dashboard's pure functions: quantiles from buckets, SVG charts, frames, chains, waterfalls."""

from __future__ import annotations

import math

import pytest

from kansoku.web.dashboard.charts import bar_chart, compact, duration, line_chart, nice_ceiling, period
from kansoku.web.dashboard.filters import ErrorFilters
from kansoku.web.dashboard.present import (
    chain,
    frame_lines,
    human_bytes,
    mask_channel,
    span_status,
    span_title,
    waterfall,
)
from kansoku.web.dashboard.render import ago, query_string, timestamp
from kansoku.web.dashboard.series import FIT, Point, Window, parse_buckets, quantile, request_points, totals, window

BOUNDS = (0.1, 0.5, 1.0)


@pytest.mark.parametrize("raw", [
    {"0.1": 2, "0.5": 6, "1.0": 9, "+Inf": 10},
    [[0.1, 2], [0.5, 6], [1.0, 9], ["+Inf", 10]],
    [2, 6, 9, 10],
])
def test_parse_buckets_accepts_every_stored_shape(raw: object) -> None:
    """A mapping, pairs, or counts aligned with the configured bounds all mean the same buckets."""
    assert parse_buckets(raw, BOUNDS) == {0.1: 2, 0.5: 6, 1.0: 9, math.inf: 10}


def test_quantile_interpolates_inside_the_bucket() -> None:
    """As histogram_quantile: the rank's position inside its bucket, linearly."""
    buckets = {0.1: 2, 0.5: 6, 1.0: 9, math.inf: 10}
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (5 - 2) / 4)
    assert quantile(0.1, buckets) == pytest.approx(0.05)
    assert quantile(0.99, buckets) == 1.0  # in the +Inf bucket: the top finite bound
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.1: 0, math.inf: 0}) is None
    assert quantile(0.9, {0.1: 3, 0.5: 3}, total=6) == 0.5  # no +Inf bucket: the total says how many


def test_request_points_sum_instances_and_minutes() -> None:
    """Rows of two instances in one step fold into one point; rows outside the window are ignored."""
    rows = [
        (100, 10, 1, 1, 1.0, '{"0.1": 5, "+Inf": 10}'),
        (101, 30, 0, 3, 2.0, {"0.1": 30, "+Inf": 30}),
        (99, 1000, 0, 0, 0.0, "{}"),
    ]
    points = request_points(rows, 100, 4, 2, BOUNDS)
    assert [p.requests for p in points] == [40, 0]
    assert points[0].buckets == {0.1: 35, math.inf: 40}
    assert points[0].error_rate == pytest.approx(10.0)
    assert points[1].error_rate is None and points[1].latency_ms(0.5) is None
    assert totals(points).requests == 40
    assert totals([]) == Point(start=0.0)


def test_line_chart_escapes_and_breaks_gaps() -> None:
    """Labels are escaped, a None splits the line, and a lone point is drawn as a dot."""
    svg = line_chart([("<b>", [1.0, 2.0, None, 3.0])], ["<x>", "b", "c", "d"], title='say "hi" <now>')
    assert "<b>" not in svg and "&lt;x&gt;" in svg
    assert 'aria-label="say &#34;hi&#34; &lt;now&gt;. &lt;b&gt;: latest 3, max 3"' in svg
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1
    empty = line_chart([("a", [None, None])], ["x", "y"], title="Nothing")
    assert 'aria-label="Nothing: no data"' in empty and ">no data</text>" in empty


def test_bar_chart_has_a_tooltip_per_bar() -> None:
    """Each bar says its label and value; the label of the chart gives the total."""
    svg = bar_chart([0, 5, 2], ["a", "b", "c"], title="Per hour")
    assert svg.count("<rect") == 3
    assert "<title>b: 5 events</title>" in svg
    assert 'aria-label="Per hour: 7 events in total, at most 5 per bar"' in svg


@pytest.mark.parametrize(("value", "expected"), [(0, 1.0), (0.7, 1.0), (3, 5.0), (12, 20.0), (240, 250.0),
                                                 (1000, 1000.0), (1001, 2000.0)])
def test_nice_ceiling(value: float, expected: float) -> None:
    """Axis tops are 1, 2, 2.5 or 5 times a power of ten."""
    assert nice_ceiling(value) == expected


def test_number_formats() -> None:
    """Compact numbers, durations and byte sizes read the way people write them."""
    assert [compact(v) for v in (None, 0, 7, 2.345, 12.5, 950, 1200, 3_400_000, 2e9)] == [
        "–", "0", "7", "2.35", "12.5", "950", "1.2k", "3.4M", "2G"]
    assert [duration(v) for v in (None, 0, 2.5, 250, 2500, 150_000)] == [
        "–", "0 ms", "2.5 ms", "250 ms", "2.50 s", "2.5 min"]
    assert [human_bytes(v) for v in (512, 3500, 12 * 1024**2, 3 * 1024**3)] == [
        "512 B", "3.4 KiB", "12.0 MiB", "3.0 GiB"]


def test_frame_lines_number_the_context() -> None:
    """Source context lines are numbered around the failing line, which is marked."""
    frame = {"lineno": 10, "pre_context": ["a", "b"], "context_line": "c", "post_context": ["d"]}
    assert frame_lines(frame) == [(8, "a", False), (9, "b", False), (10, "c", True), (11, "d", False)]
    assert frame_lines({"lineno": 3}) == []


def test_chain_puts_the_raised_exception_first() -> None:
    """The chain is stored root cause first; shown raised first, each cause saying how it led on."""
    data = {"exceptions": [
        {"type": "OSError", "message": "disk", "relation": "context"},
        {"type": "KeyError", "message": "k", "relation": "cause"},
        {"type": "ValueError", "message": "v", "relation": "", "frames": [{"function": "f"}, "junk"]},
    ]}
    shown = chain(data)
    assert [e["type"] for e in shown] == ["ValueError", "KeyError", "OSError"]
    assert [e["link"] for e in shown] == [None, "Direct cause of the exception above",
                                          "Being handled when the exception above occurred"]
    assert shown[0]["frames"] == [{"function": "f"}]
    assert chain({"exception_type": "E", "message": "m"})[0]["type"] == "E"


def test_waterfall_orders_a_tree_and_survives_bad_data() -> None:
    """Children follow their parent by start time; orphans become roots; cycles do not loop."""
    def span(sid: str, parent: str | None, start: float, end: float) -> dict[str, object]:
        return {"span_id": sid, "parent_id": parent, "start_time": start, "end_time": end}

    rows = waterfall([span("c", "a", 1.5, 2.0), span("a", None, 1.0, 3.0), span("b", "a", 1.2, 1.4),
                      span("o", "missing", 2.0, 2.5), span("x", "y", 1.0, 1.1), span("y", "x", 1.0, 1.1)])
    assert [(r.span["span_id"], r.depth) for r in rows] == [("a", 0), ("b", 1), ("c", 1), ("o", 0)]
    assert rows[0].offset == 0 and rows[0].width == 1000
    assert rows[1].offset == pytest.approx(100) and rows[1].offset_ms == pytest.approx(200)
    assert waterfall([]) == []


def test_mask_channel_hides_secrets_and_url_paths() -> None:
    """Secret-named fields become ***; URLs keep only scheme and host; plain fields stay."""
    shown = mask_channel({"name": "ops", "type": "webhook", "url": "https://hooks.example.com/T1/B2/SECRET",
                          "secret": "s3cr3t", "routing_key": "abc", "recipients": ["a@example.com"],
                          "timeout": 10.0, "headers": {"Authorization": "Bearer abcdefghijkl"},
                          "urls": ["tgram://bottoken/chat"], "webhook_url": "**********", "empty": None})
    assert shown == {"name": "ops", "type": "webhook", "url": "https://hooks.example.com/***", "secret": "***",
                     "routing_key": "***", "recipients": '["[REDACTED EMAIL]"]', "timeout": "10.0",
                     "headers": '{"Authorization": "***"}', "urls": "tgram://bottoken/***",
                     "webhook_url": "**********"}


def test_error_filters_parse_and_link() -> None:
    """Filters come from the query string with safe fallbacks and rebuild links with changes."""
    filters = ErrorFilters.parse({"status": "", "q": "  boom ", "sort": "count", "page": "3", "service": "shop"})
    assert filters == ErrorFilters(status="", service="shop", q="boom", sort="count", page=3)
    assert filters.query(page=1) == {"status": "", "service": "shop", "q": "boom", "sort": "count"}
    assert ErrorFilters.parse({"status": "deleted", "sort": "x", "page": "nan"}) == ErrorFilters()
    assert ErrorFilters().query(page=2) == {"status": "unresolved", "page": "2"}


def test_time_and_query_filters() -> None:
    """Times render in UTC, ages relative to the injected now, and query strings encode safely."""
    assert timestamp(0) == "1970-01-01 00:00:00 UTC" and timestamp(None) == "–"
    assert [ago(t, 10_000) for t in (None, 9_990, 9_000, 2_000, 20_000)] == [
        "never", "just now", "16 min ago", "2 h ago", "in the future"]
    assert ago(10_000 - 3 * 86400, 10_000) == "3 d ago"
    assert query_string({"q": "a&b", "status": "", "none": None}) == "?q=a%26b&status="
    assert query_string({}) == ""


def test_function_rows_in_milliseconds() -> None:
    """The debugger's seconds become milliseconds; NaN from an empty sketch becomes no value."""
    from kansoku.web.dashboard.routes import function_rows, sort_rows

    rows = function_rows({"f": {"count": 2.0, "total": 0.5, "mean": 0.25, "p50": math.nan},
                          "g": {"count": 1.0, "total": 0.1}})
    assert rows[0] == {"name": "f", "count": 2, "total_ms": 500.0, "mean_ms": 250.0, "p50_ms": None,
                       "p95_ms": None, "p99_ms": None, "min_ms": None, "max_ms": None}
    assert [r["name"] for r in sort_rows(rows, "total_ms", descending=False)] == ["g", "f"]
    assert [r["name"] for r in sort_rows(rows, "mean_ms", descending=True)] == ["f", "g"]


@pytest.mark.parametrize(("minutes", "text"), [
    (0, "0 s"), (0.5, "30 s"), (1, "1 min"), (2.5, "2 min 30 s"), (60, "1 h"), (90, "1 h 30 min"),
    (1440, "1 d"), (1441.5, "1 d 1 min"), (None, "–"),
])
def test_period_says_a_length_of_time_as_people_do(minutes: float | None, text: str) -> None:
    """Configured minutes read '30 s', '1 h 30 min': at most two units, never '0.5 min'."""
    assert period(minutes) == text


def test_span_title_and_status() -> None:
    """An unmatched server span is titled by method and path; UNSET and OK read 'ok', ERROR 'error'."""
    unmatched = {"name": "GET", "kind": "SERVER", "attributes": {"url.path": "/missing"}, "status": "UNSET"}
    listed = {"name": "POST", "kind": "SERVER", "route": None, "path": "/nope", "status": "ERROR"}
    matched = {"name": "GET /a/{id}", "kind": "SERVER", "attributes": {"http.route": "/a/{id}", "url.path": "/a/1"}}
    assert [span_title(s) for s in (unmatched, listed, matched)] == [
        "GET (no route) /missing", "POST (no route) /nope", "GET /a/{id}"]
    assert span_title({"name": "SELECT", "kind": "CLIENT", "attributes": {"url.path": "/x"}}) == "SELECT"
    assert [span_status({"status": s}) for s in ("UNSET", "OK", "ERROR", "error", None)] == [
        "ok", "ok", "error", "error", "ok"]


def test_window_fits_the_data() -> None:
    """The default window starts at the first data while it is under an hour old, then takes the
    smallest range holding it (6h, else 24h); no data: the last hour; a chosen range is kept."""
    last = 1000
    assert window(FIT, last, None) == Window("1h", 941, 60, 1)
    assert window(FIT, last, last) == Window(FIT, last, 1, 1)
    assert window(FIT, last, last - 11) == Window(FIT, last - 11, 12, 1)
    assert window(FIT, last, last - 59).minutes == 60
    assert window(FIT, last, last - 60).name == "6h"
    assert window(FIT, last, last - 360).name == "24h"
    assert window(FIT, last, last + 5).name == "1h"  # data from a clock ahead of this one
    assert window("7d", last, None) == Window("7d", 1080 - 10080, 10080, 120)
    assert (window(FIT, last, last - 11).since, window("6h", last, None).since) == ("12m", "6h")
