"""Charts as inline SVG, drawn on the server: no chart library, no script, no inline style (CSP).

Colours come from CSS classes (`s-1`, `s-2`...), so light and dark themes apply to charts too.
Every chart carries an `aria-label` that states what a sighted reader would take from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart", "compact", "duration", "line_chart", "nice_ceiling", "period"]

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 24
Series = tuple[str, Sequence[float | None]]  # (name, values); colour by position


def compact(value: float | None) -> str:
    """A short human number: 950, 1.2k, 3.4M (and an en dash for no value)."""
    if value is None:
        return "–"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"


def duration(ms: float | None) -> str:
    """Milliseconds as '840 ms', '2.5 s', '3.1 min'."""
    if ms is None:
        return "–"
    if ms == 0:
        return "0 ms"
    if ms >= 60_000:
        return f"{ms / 60_000:.1f} min"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def period(minutes: float | None) -> str:
    """A configured length of time in minutes as people say it: '30 s', '5 min', '1 h 30 min', '2 d'.

    At most two units, the larger first; seconds are rounded (a rule's 0.5 minutes is '30 s').
    """
    if minutes is None:
        return "–"
    seconds = round(float(minutes) * 60)
    if seconds <= 0:
        return "0 s"
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2])


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= value (axis maximum)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _svg_open(label: str, css: str) -> str:
    return (f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(label)}" focusable="false"><title>{escape(label)}</title>')


def _axes(top: float, labels: Sequence[str], fmt: Callable[[float], str]) -> list[str]:
    x0, x1, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    parts = []
    for fraction in (0.0, 0.5, 1.0):
        y = y1 - fraction * (y1 - TOP)
        parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(fmt(top * fraction))}</text>")
    if labels:
        picks = [(0, "start"), (len(labels) // 2, "middle"), (len(labels) - 1, "end")]
        for index, anchor in picks if len(labels) > 2 else picks[:1]:
            x = x0 + (x1 - x0) * (index / max(1, len(labels) - 1))
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                         f"{escape(labels[index])}</text>")
    return parts


def line_chart(
    series: Sequence[Series], labels: Sequence[str], *, title: str,
    fmt: Callable[[float], str] = compact,
) -> Markup:
    """Lines over time; gaps (None) break a line. `labels` name the x positions."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    summary = "; ".join(
        f"{name}: latest {_text(_last(vs), fmt)}, max {fmt(max((v for v in vs if v is not None), default=0))}"
        for name, vs in series
    )
    parts = [_svg_open(f"{title}. {summary}" if values else f"{title}: no data", "line"),
             *_axes(top, labels, fmt)]
    x0, x1, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    for number, (_name, vs) in enumerate(series, start=1):
        step = (x1 - x0) / max(1, len(vs) - 1)
        for segment in _segments(vs):
            coords = [(x0 + i * step, y1 - (v / top) * (y1 - TOP)) for i, v in segment]
            if len(coords) == 1:
                x, y = coords[0]
                parts.append(f'<circle class="s-{number}" cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>')
            else:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                parts.append(f'<polyline class="s-{number}" fill="none" points="{points}"/>')
    if not values:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above went through escape()


def bar_chart(
    values: Sequence[int], labels: Sequence[str], *, title: str, unit: str = "events",
) -> Markup:
    """One bar per value, each with a tooltip ('label: n events')."""
    top = nice_ceiling(float(max(values, default=0)))
    total = sum(values)
    parts = [_svg_open(f"{title}: {compact(total)} {unit} in total, at most {compact(max(values, default=0))}"
                       " per bar", "bars"), *_axes(top, labels, compact)]
    x0, x1, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    slot = (x1 - x0) / max(1, len(values))
    for index, value in enumerate(values):
        height = (value / top) * (y1 - TOP)
        x = x0 + index * slot + slot * 0.1
        parts.append(f'<rect class="s-1" x="{x:.1f}" y="{y1 - height:.1f}" width="{slot * 0.8:.1f}" '
                     f'height="{max(height, 0.0):.1f}"><title>{escape(labels[index])}: {value} {escape(unit)}'
                     "</title></rect>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above went through escape()


def _text(value: float | None, fmt: Callable[[float], str]) -> str:
    return "–" if value is None else fmt(value)


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    segments: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((index, value))
    return [s for s in segments if s]
