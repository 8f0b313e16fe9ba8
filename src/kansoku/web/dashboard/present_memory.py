"""The memory report (`MemoryTracker.report()`) shaped for the Performance page.

`memory_sections(report)` turns the raw report into titled sections (Process, GC, tracemalloc,
Tracked objects), each with labelled facts and tables whose cells are already written for people:
bytes in KiB/MiB, times as the dashboard writes them, durations with units, percentages with a %.
Nothing is dropped: a field this module does not know yet is still shown, under its key made
readable. The JSON API keeps returning the raw report; this is only how the page shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kansoku.web.dashboard.charts import duration
from kansoku.web.dashboard.present import format_value, human_bytes
from kansoku.web.dashboard.render import iso, timestamp

__all__ = ["Cell", "Column", "Fact", "Section", "Table", "memory_sections"]


@dataclass(frozen=True)
class Cell:
    """One value as shown: its text, right-aligned if a number, in a <time> if `iso`, in <code> if `code`."""

    text: str
    num: bool = False
    iso: str = ""
    code: bool = False
    muted: bool = False


@dataclass(frozen=True)
class Column:
    """A table column: the report key it shows, its heading, and whether it holds numbers."""

    key: str
    label: str
    num: bool = False


@dataclass(frozen=True)
class Fact:
    """A labelled single value of a section (`key` is the report's field)."""

    key: str
    label: str
    value: Cell


@dataclass(frozen=True)
class Table:
    """A list from the report (`key` is its field): one row of cells per item."""

    key: str
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    empty: str
    note: str = ""


@dataclass(frozen=True)
class Section:
    """One card of the memory report: facts, then tables, with notes and an error if any."""

    key: str
    title: str
    facts: list[Fact]
    tables: list[Table]
    notes: list[str]
    error: str = ""


Format = Callable[[Any], Cell]
Spec = tuple[str, str, Format]  # report key, label, how its value is written
_NONE = Cell("–", muted=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> Cell:
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return Cell("on" if value else "off")
    return Cell(format_value(value, 300))


def _code(value: Any) -> Cell:
    return _NONE if value is None else Cell(format_value(value, 300), code=True)


def _number(value: Any) -> Cell:
    if not _is_number(value):
        return _text(value)
    return Cell(f"{value:,}" if isinstance(value, int) else f"{value:,.6g}", num=True)


def _signed(value: Any) -> Cell:
    cell = _number(value)
    return Cell("+" + cell.text, num=True) if _is_number(value) and value > 0 else cell


def _plain(value: Any) -> Cell:
    """Ids and generation numbers: no thousands separator."""
    return Cell(str(value), num=True) if _is_number(value) else _text(value)


def _bytes(value: Any) -> Cell:
    return Cell(human_bytes(value), num=True) if _is_number(value) else _text(value)


def _bytes_diff(value: Any) -> Cell:
    cell = _bytes(value)
    return Cell("+" + cell.text, num=True) if _is_number(value) and value > 0 else cell


def _percent(value: Any) -> Cell:
    return Cell(f"{value:g}%", num=True) if _is_number(value) else _text(value)


def _time(value: Any) -> Cell:
    """Epoch seconds as the dashboard writes times, with the exact instant in <time datetime>."""
    return Cell(timestamp(value), iso=iso(value)) if _is_number(value) else _text(value)


def _ms(value: Any) -> Cell:
    """Milliseconds (what the GC callback measures): µs below one, then the dashboard's durations."""
    if not _is_number(value):
        return _text(value)
    return Cell(f"{value * 1000:.0f} µs" if 0 < value < 1 else duration(value), num=True)


def _seconds(value: Any) -> Cell:
    """Ages and lifetimes: '4.2 s', '3.5 min', '2.0 h', '1.5 d' (milliseconds below a second)."""
    if not _is_number(value):
        return _text(value)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if value >= size:
            return Cell(f"{value / size:.1f} {unit}", num=True)
    return _ms(value * 1000)


def _types(value: Any) -> Cell:
    """gc.garbage by type: 'Node: 3, Cycle: 1'."""
    if not isinstance(value, Mapping):
        return _text(value)
    if not value:
        return Cell("none", muted=True)
    return Cell(", ".join(f"{name}: {_number(count).text}" for name, count in value.items()))


_NUMERIC = frozenset({_number, _signed, _plain, _bytes, _bytes_diff, _percent, _ms, _seconds})


def _label(key: str) -> str:
    """A field this module does not know (added to the report later), still shown: its key made readable."""
    return key.replace("_", " ").capitalize()


def _facts(data: Mapping[str, Any], known: Sequence[Spec]) -> list[Fact]:
    """The known fields in their order, then any other field of `data` (never dropped)."""
    facts = [Fact(key, label, fmt(data[key])) for key, label, fmt in known if key in data]
    names = {key for key, _, _ in known}
    others = [(str(key), value) for key, value in data.items() if key not in names]
    return facts + [Fact(key, _label(key), _text(value)) for key, value in others]


def _table(key: str, title: str, items: Any, known: Sequence[Spec], *, empty: str, note: str = "") -> Table:
    """A list of mappings as rows: a column per known key, then one per any other key an item has."""
    found = [item if isinstance(item, Mapping) else {"value": item} for item in items or []]
    formats = {name: fmt for name, _, fmt in known}
    columns = [Column(name, label, fmt in _NUMERIC) for name, label, fmt in known]
    extra = dict.fromkeys(str(name) for item in found for name in item if name not in formats)
    columns += [Column(name, _label(name)) for name in extra]
    rows = [[formats.get(c.key, _text)(item[c.key]) if c.key in item else _NONE for c in columns]
            for item in found]
    return Table(key, title, columns, rows, empty, note)


def _process(data: Mapping[str, Any]) -> Section:
    known = [("pid", "Process ID", _plain), ("rss", "Resident memory (RSS)", _bytes),
             ("vms", "Virtual memory (VMS)", _bytes), ("percent", "Share of system memory", _percent)]
    error = f"Process memory unavailable: {data['error']}" if data.get("error") else ""
    facts = _facts({k: v for k, v in data.items() if k != "error" or not error}, known)
    return Section("process", "Process", facts, [], [], error)


def _generations(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """gc.get_stats(), gc.get_count() and gc.get_threshold() side by side, one row per generation."""
    stats = [s if isinstance(s, Mapping) else {"stats": s} for s in data.get("stats") or []]
    counts, thresholds = list(data.get("counts") or []), list(data.get("thresholds") or [])
    rows = []
    for gen in range(max(len(stats), len(counts), len(thresholds))):
        row: dict[str, Any] = {"generation": gen, **(stats[gen] if gen < len(stats) else {})}
        if gen < len(counts):
            row["counts"] = counts[gen]
        if gen < len(thresholds):
            row["thresholds"] = thresholds[gen]
        rows.append(row)
    return rows


_GC_TABLES = frozenset({"stats", "counts", "thresholds", "recent_collections"})


def _gc(data: Mapping[str, Any]) -> Section:
    facts = _facts({k: v for k, v in data.items() if k not in _GC_TABLES}, [
        ("enabled", "Automatic collection", _text), ("uncollectable_total", "Uncollectable (total)", _number),
        ("garbage_count", "Garbage now", _number), ("garbage_types", "Garbage by type", _types)])
    generations = _table("stats", "Generations", _generations(data), [
        ("generation", "Generation", _plain), ("collections", "Collections", _number),
        ("collected", "Collected", _number), ("uncollectable", "Uncollectable", _number),
        ("counts", "Count", _number), ("thresholds", "Threshold", _number)],
        empty="No statistics.",
        note="Count: allocations (generation 0) or collections of the generation below (1, 2) since "
             "this generation was last collected; it is collected when the count passes its threshold.")
    recent = list(data.get("recent_collections") or [])[::-1]
    collections = _table("recent_collections", "Recent collections", recent, [
        ("timestamp", "Time", _time), ("generation", "Generation", _plain),
        ("collected", "Collected", _number), ("uncollectable", "Uncollectable", _number),
        ("duration_ms", "Duration", _ms)],
        empty="No collection since the tracker started.", note="Newest first." if recent else "")
    return Section("gc", "GC", facts, [generations, collections], [])


def _site(item: Any) -> Any:
    """A tracemalloc entry with its file and line as one `file:line` site."""
    if not isinstance(item, Mapping) or "file" not in item:
        return item
    site = f"{item['file']}:{item['line']}" if "line" in item else str(item["file"])
    return {"site": site, **{k: v for k, v in item.items() if k not in ("file", "line")}}


def _tracemalloc(data: Mapping[str, Any]) -> Section:
    lists = {k for k in ("top", "diff") if isinstance(data.get(k), list)}
    no_baseline = "diff" in data and data["diff"] is None
    facts = _facts({k: v for k, v in data.items() if k not in lists and not (k == "diff" and no_baseline)}, [
        ("tracing", "Tracing allocations", _text), ("current", "Traced now", _bytes),
        ("peak", "Traced peak", _bytes)])
    notes = [] if data.get("tracing") else [
        "Start Python with PYTHONTRACEMALLOC=1 to see where memory is allocated."]
    if no_baseline:
        notes.append("No baseline set, so no change since one to show.")
    site: list[Spec] = [("site", "Site", _code), ("size", "Size", _bytes), ("count", "Blocks", _number)]
    tables = []
    if "top" in lists:
        tables.append(_table("top", "Largest allocation sites", [_site(i) for i in data["top"]], site,
                             empty="No allocation traced."))
    if "diff" in lists:
        tables.append(_table("diff", "Change since the baseline", [_site(i) for i in data["diff"]], [
            *site[:2], ("size_diff", "Size change", _bytes_diff), site[2],
            ("count_diff", "Blocks change", _signed)],
            empty="No change since the baseline."))
    return Section("tracemalloc", "tracemalloc", facts, tables, notes)


def _tracked(data: Mapping[str, Any]) -> Section:
    facts = _facts({k: v for k, v in data.items() if k not in ("alive", "finalized")},
                   [("alive_count", "Alive", _number)])
    obj: list[Spec] = [("name", "Name", _code), ("type", "Type", _code), ("size", "Size", _bytes),
                       ("created_at", "Created", _time)]
    alive, finalized = list(data.get("alive") or []), list(data.get("finalized") or [])[::-1]
    count = data.get("alive_count")
    shown = f"The {len(alive)} oldest of {count:,}." if isinstance(count, int) and count > len(alive) else ""
    tables = [
        _table("alive", "Alive", alive, [*obj, ("age_seconds", "Age", _seconds)],
               empty="No tracked object is alive.", note=shown),
        _table("finalized", "Collected", finalized,
               [*obj, ("finalized_at", "Collected", _time), ("lifetime_seconds", "Lifetime", _seconds)],
               empty="No tracked object collected yet.", note="Newest first." if finalized else ""),
    ]
    notes = [] if alive or finalized else ["Follow an object's lifetime with kansoku.track_object(obj)."]
    return Section("tracked_objects", "Tracked objects", facts, tables, notes)


_SECTIONS: dict[str, Callable[[Mapping[str, Any]], Section]] = {
    "process": _process, "gc": _gc, "tracemalloc": _tracemalloc, "tracked_objects": _tracked}


def memory_sections(report: Mapping[str, Any]) -> list[Section]:
    """The memory report as titled sections with human labels, units and times (see the module doc).

    The report's `timestamp` is the page's ("Report taken ..."), not a section's.
    """
    sections = []
    for key, value in report.items():
        name = str(key)
        if name == "timestamp":
            continue
        build = _SECTIONS.get(name)
        if build is not None and isinstance(value, Mapping):
            sections.append(build(value))
        elif isinstance(value, Mapping):
            sections.append(Section(name, _label(name), _facts(value, []), [], []))
        else:
            sections.append(Section(name, _label(name), [Fact(name, "Value", _text(value))], [], []))
    return sections
