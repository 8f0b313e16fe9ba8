"""The memory report as the Performance page shows it: titled sections, labels, units and times."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import httpx

from kansoku.debug._memory import MemoryTracker
from kansoku.web.dashboard.present_memory import Section, memory_sections

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


class Node:
    """Something weakly referenceable to track."""


def report() -> dict[str, Any]:
    """A fixed report shaped like MemoryTracker.report() (tracemalloc on, with a baseline)."""
    site = {"file": "/srv/app/orders.py", "line": 42}
    return {
        "timestamp": NOW,
        "process": {"pid": 4242, "rss": 48 * 1024**2, "vms": 3 * 1024**3, "percent": 0.432},
        "gc": {
            "enabled": True, "counts": [36, 5, 1], "thresholds": [700, 10, 10],
            "stats": [{"collections": 1087, "collected": 655, "uncollectable": 0},
                      {"collections": 98, "collected": 67, "uncollectable": 0},
                      {"collections": 8, "collected": 12, "uncollectable": 2}],
            "uncollectable_total": 2, "garbage_count": 3, "garbage_types": {"Node": 2, "dict": 1},
            "recent_collections": [
                {"timestamp": NOW - 5, "generation": 0, "collected": 31, "uncollectable": 0,
                 "duration_ms": 0.104},
                {"timestamp": NOW - 1, "generation": 2, "collected": 0, "uncollectable": 2,
                 "duration_ms": 12.834},
            ],
        },
        "tracemalloc": {"tracing": True, "current": 811_347, "peak": 853_684,
                        "top": [{**site, "size": 66_024, "count": 307}],
                        "diff": [{**site, "size": 66_024, "size_diff": 2048, "count": 307,
                                  "count_diff": -3}]},
        "tracked_objects": {
            "alive_count": 1,
            "alive": [{"name": "cart", "type": "app.Cart", "size": 56, "created_at": NOW - 90,
                       "age_seconds": 90.0}],
            "finalized": [{"name": "order", "type": "app.Order", "size": 64, "created_at": NOW - 10,
                           "finalized_at": NOW - 9.5, "lifetime_seconds": 0.5}],
        },
    }


def by_key(sections: list[Section]) -> dict[str, Section]:
    """The sections by their report key."""
    return {s.key: s for s in sections}


def facts(section: Section) -> dict[str, str]:
    """A section's facts as label -> shown text."""
    return {f.label: f.value.text for f in section.facts}


def texts(section: Section, table: str) -> list[dict[str, str]]:
    """One table of a section as rows of heading -> shown text."""
    (found,) = [t for t in section.tables if t.key == table]
    return [{c.label: cell.text for c, cell in zip(found.columns, row, strict=True)} for row in found.rows]


def keys_of(value: Any) -> Iterator[str]:
    """Every mapping key in a nested report (inside lists too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


def shown_keys(sections: list[Section]) -> set[str]:
    """The report keys the sections show (sections, facts, tables and columns)."""
    shown = {"timestamp"}  # the page shows it as "Report taken ..."
    for section in sections:
        shown |= {section.key} | {f.key for f in section.facts}
        for table in section.tables:
            shown |= {table.key} | {c.key for c in table.columns}
    # columns merged from several fields: file and line make the site, counts and thresholds per generation
    return shown | ({"file", "line"} if "site" in shown else set())


def test_sections_have_titles_in_order() -> None:
    """The four parts of the report become the cards GC, Process, tracemalloc and Tracked objects."""
    assert [(s.key, s.title) for s in memory_sections(report())] == [
        ("process", "Process"), ("gc", "GC"), ("tracemalloc", "tracemalloc"),
        ("tracked_objects", "Tracked objects")]


def test_process_facts_have_units() -> None:
    """Process memory reads as labelled bytes and a percentage with its % sign."""
    assert facts(by_key(memory_sections(report()))["process"]) == {
        "Process ID": "4242", "Resident memory (RSS)": "48.0 MiB", "Virtual memory (VMS)": "3.0 GiB",
        "Share of system memory": "0.432%"}


def test_process_error_is_shown_as_an_error() -> None:
    """A sandbox without /proc shows the reason, not a fact called 'error'."""
    sections = memory_sections({"process": {"pid": 7, "error": "AccessDenied: no /proc"}})
    (process,) = sections
    assert process.error == "Process memory unavailable: AccessDenied: no /proc"
    assert facts(process) == {"Process ID": "7"}


def test_gc_facts_have_human_labels() -> None:
    """The GC card labels its fields for people and lists the garbage by type."""
    assert facts(by_key(memory_sections(report()))["gc"]) == {
        "Automatic collection": "on", "Uncollectable (total)": "2", "Garbage now": "3",
        "Garbage by type": "Node: 2, dict: 1"}


def test_gc_generations_table_has_a_generation_column() -> None:
    """gc.get_stats() with the counts and thresholds is one row per generation 0, 1, 2."""
    assert texts(by_key(memory_sections(report()))["gc"], "stats") == [
        {"Generation": "0", "Collections": "1,087", "Collected": "655", "Uncollectable": "0",
         "Count": "36", "Threshold": "700"},
        {"Generation": "1", "Collections": "98", "Collected": "67", "Uncollectable": "0",
         "Count": "5", "Threshold": "10"},
        {"Generation": "2", "Collections": "8", "Collected": "12", "Uncollectable": "2",
         "Count": "1", "Threshold": "10"}]


def test_recent_collections_have_times_and_durations() -> None:
    """Collections list newest first, times as the dashboard writes them, durations with units."""
    gc_section = by_key(memory_sections(report()))["gc"]
    assert texts(gc_section, "recent_collections") == [
        {"Time": "2025-06-15 15:06:39 UTC", "Generation": "2", "Collected": "0", "Uncollectable": "2",
         "Duration": "13 ms"},
        {"Time": "2025-06-15 15:06:35 UTC", "Generation": "0", "Collected": "31", "Uncollectable": "0",
         "Duration": "104 µs"}]
    (table,) = [t for t in gc_section.tables if t.key == "recent_collections"]
    assert table.rows[0][0].iso == "2025-06-15T15:06:39+00:00"  # the exact instant for <time datetime>
    assert [c.num for c in table.columns] == [False, True, True, True, True]


def test_tracemalloc_sites_sizes_and_differences() -> None:
    """Allocation sites read file:line, sizes in bytes, changes signed."""
    section = by_key(memory_sections(report()))["tracemalloc"]
    assert facts(section) == {"Tracing allocations": "on", "Traced now": "792.3 KiB",
                              "Traced peak": "833.7 KiB"}
    assert texts(section, "top") == [{"Site": "/srv/app/orders.py:42", "Size": "64.5 KiB", "Blocks": "307"}]
    assert texts(section, "diff") == [{"Site": "/srv/app/orders.py:42", "Size": "64.5 KiB",
                                       "Size change": "+2.0 KiB", "Blocks": "307", "Blocks change": "-3"}]
    assert section.notes == []


def test_tracemalloc_off_says_how_to_turn_it_on() -> None:
    """Not tracing: the card says so and how to start it, and shows no empty tables."""
    (section,) = memory_sections({"tracemalloc": {"tracing": False}})
    assert facts(section) == {"Tracing allocations": "off"}
    assert section.tables == [] and "PYTHONTRACEMALLOC=1" in section.notes[0]


def test_tracked_objects_times_and_lifetimes() -> None:
    """Tracked objects show creation and collection times, ages and lifetimes with units."""
    section = by_key(memory_sections(report()))["tracked_objects"]
    assert facts(section) == {"Alive": "1"}
    assert texts(section, "alive") == [{"Name": "cart", "Type": "app.Cart", "Size": "56 B",
                                        "Created": "2025-06-15 15:05:10 UTC", "Age": "1.5 min"}]
    assert texts(section, "finalized") == [{"Name": "order", "Type": "app.Order", "Size": "64 B",
                                            "Created": "2025-06-15 15:06:30 UTC",
                                            "Collected": "2025-06-15 15:06:30 UTC", "Lifetime": "500 ms"}]


def test_unknown_fields_are_still_shown() -> None:
    """A field the report gains later shows under its key made readable, in cards and in tables."""
    data = report()
    data["gc"]["freeze_count"] = 12
    data["gc"]["recent_collections"][0]["candidates"] = 99
    data["threads"] = {"alive": 4}
    sections = by_key(memory_sections(data))
    assert facts(sections["gc"])["Freeze count"] == "12"
    assert texts(sections["gc"], "recent_collections")[1]["Candidates"] == "99"
    assert (sections["threads"].title, facts(sections["threads"])) == ("Threads", {"Alive": "4"})


def test_every_key_of_a_real_report_is_shown() -> None:
    """Nothing of a real MemoryTracker report is dropped: every key maps to a section, fact or column."""
    tracker = MemoryTracker()
    tracker.start()
    tracker.start_tracemalloc()
    try:
        tracker.set_baseline()
        kept, gone = Node(), Node()
        assert tracker.track_object(kept, "kept") and tracker.track_object(gone, "gone")
        del gone
        gc.collect()
        real = tracker.report()
    finally:
        tracker.stop()
    sections = memory_sections(real)
    assert set(keys_of(real)) - shown_keys(sections) == set()
    tables = {t.key: t for s in sections for t in s.tables}
    assert len(tables["recent_collections"].rows) == len(real["gc"]["recent_collections"]) > 0
    assert len(tables["stats"].rows) == len(real["gc"]["stats"]) == 3
    assert len(tables["finalized"].rows) == 1 and len(tables["alive"].rows) == 1
    assert len(tables["top"].rows) == len(real["tracemalloc"]["top"])
    del kept


async def test_page_shows_the_memory_cards(client: httpx.AsyncClient) -> None:
    """The Performance page renders the cards, labels and generation table (no raw snake_case keys)."""
    html = (await client.get("/performance")).text
    for text in ('<h3 id="mem-gc-title">GC</h3>', "Uncollectable (total)", "Garbage now",
                 "Recent collections", '<th scope="col" class="num">Generation</th>',
                 "Resident memory (RSS)", "Report taken"):
        assert text in html
    for raw in ("uncollectable_total", "garbage_count", "recent_collections</", ">Gc<"):
        assert raw not in html


async def test_memory_api_returns_the_raw_report(client: httpx.AsyncClient) -> None:
    """GET /api/debug/memory still answers the tracker's raw report (numbers, snake_case keys)."""
    body = (await client.get("/api/debug/memory")).json()
    assert set(body) == {"timestamp", "process", "gc", "tracemalloc", "tracked_objects"}
    assert isinstance(body["gc"]["uncollectable_total"], int)
    assert isinstance(body["process"].get("rss", 0), int) and isinstance(body["timestamp"], float)
    assert [sorted(s) for s in body["gc"]["stats"]] == [["collected", "collections", "uncollectable"]] * 3
