"""Error snapshots: the frames, arguments, locals, memory and thread of a failed call, redacted.

A snapshot is a plain JSON-ready dict. `build_snapshot` makes one from an exception; the caller
decides what goes in (arguments always, locals of the in-app frames only at VERBOSE).
`SnapshotWriter` keeps the last N as JSON files in a directory.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import orjson
from opentelemetry import trace

from kansoku.redact import Redactor

__all__ = ["SnapshotWriter", "build_snapshot", "is_in_app", "process_rss", "safe_str"]

MAX_FRAMES: Final = 50
MAX_LOCAL_FRAMES: Final = 20
_KANSOKU_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # the package
_LIBRARY_DIRS: Final = tuple(
    {os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(key))}
)
_in_app_cache: dict[str, bool] = {}


def is_in_app(filename: str) -> bool:
    """Whether a frame's file is the application's own code (not kansoku, a library or the stdlib)."""
    cached = _in_app_cache.get(filename)
    if cached is None:
        path = os.path.abspath(filename)
        cached = not (
            filename.startswith("<")
            or path.startswith((_KANSOKU_DIR, *_LIBRARY_DIRS))
            or "site-packages" in path
            or "dist-packages" in path
        )
        if len(_in_app_cache) < 4096:
            _in_app_cache[filename] = cached
    return cached


_process: Any = None


def process_rss() -> int | None:
    """The resident set size of this process in bytes (None if psutil cannot tell)."""
    global _process
    try:
        if _process is None:
            import psutil

            _process = psutil.Process()
        return int(_process.memory_info().rss)
    except Exception:  # psutil can fail in sandboxes; a snapshot without memory is still useful
        return None


def _frames(tb: TracebackType | None, redactor: Redactor, with_locals: bool) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append({
            "filename": code.co_filename,
            "function": code.co_qualname,
            "module": str(tb.tb_frame.f_globals.get("__name__", "")),
            "lineno": tb.tb_lineno,
            "in_app": is_in_app(code.co_filename),
            "_frame": tb.tb_frame,
        })
        tb = tb.tb_next
    frames = frames[-MAX_FRAMES:]  # the innermost frames explain the error
    local_budget = MAX_LOCAL_FRAMES
    for frame in reversed(frames):
        raw = frame.pop("_frame")
        if with_locals and frame["in_app"] and local_budget > 0:
            local_budget -= 1
            frame["locals"] = redactor.redact(
                {k: v for k, v in raw.f_locals.items() if not k.startswith("__")}
            )
    return frames


def build_snapshot(
    exc: BaseException,
    *,
    function: str,
    level: str,
    redactor: Redactor,
    arguments: Mapping[str, Any] | None = None,
    with_locals: bool = False,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """A redacted, bounded snapshot of `exc` raised in `function` (innermost frame last)."""
    ctx = trace.get_current_span().get_span_context()
    thread = threading.current_thread()
    memory: dict[str, Any] = {"rss": process_rss()}
    if tracemalloc.is_tracing():
        memory["traced_current"], memory["traced_peak"] = tracemalloc.get_traced_memory()
    snapshot: dict[str, Any] = {
        "function": function,
        "level": level,
        "timestamp": clock(),
        "exception": {
            "type": _qualified_name(type(exc)),
            "message": redactor.redact_text(safe_str(exc)),
        },
        "arguments": redactor.redact(dict(arguments)) if arguments is not None else None,
        "frames": _frames(exc.__traceback__, redactor, with_locals),
        "memory": memory,
        "thread": {"id": thread.ident, "name": thread.name},
        "process": {"pid": os.getpid()},
        "python": sys.version.split()[0],
    }
    if ctx.is_valid:
        snapshot["trace_id"] = format(ctx.trace_id, "032x")
        snapshot["span_id"] = format(ctx.span_id, "016x")
    return snapshot


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ must not hide the snapshot
        return f"<{type(value).__name__} (str failed: {type(exc).__name__})>"


class SnapshotWriter:
    """Writes snapshots as JSON files into a directory and keeps only the newest `keep` of them."""

    def __init__(self, directory: Path, keep: int = 100) -> None:
        self.directory = directory
        self.keep = keep

    def write(self, snapshot: Mapping[str, Any]) -> Path:
        """Write one snapshot atomically, then delete the oldest files past `keep`; return the path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(float(snapshot.get("timestamp") or time.time())))
        name = f"snapshot-{stamp}-{time.monotonic_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2, default=str))
        os.replace(tmp, path)
        self._rotate()
        return path

    def files(self) -> list[Path]:
        """The snapshot files, oldest first."""
        return sorted(self.directory.glob("snapshot-*.json"))

    def _rotate(self) -> None:
        for old in self.files()[: -self.keep]:
            old.unlink(missing_ok=True)
