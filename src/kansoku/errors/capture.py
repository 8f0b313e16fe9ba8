"""Turning an exception into an error event, in two halves.

On the caller's thread (the request path), `snapshot_chain` walks the tracebacks of the exception
chain and keeps only (code object, line number) per frame, plus redacted locals when asked for:
no file is read, no string formatted. In the writer thread, `expand_frames` turns that into
frames with file, module, function, line, in-app flag and source context (read with linecache,
cached per code location).
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, Final

from kansoku.errors.fingerprint import ChainFrames
from kansoku.logs._frames import MAX_CHAIN, MAX_FRAMES, Relation, qualified_name, safe_str, stack_of, walk_chain
from kansoku.typing import ExceptionInfo, FrameInfo

__all__ = ["MAX_CHAIN", "MAX_FRAMES", "FrameExpander", "InApp", "RawException", "qualified_name", "safe_str",
           "snapshot_chain", "walk_chain"]

MAX_LOCALS: Final = 30
CONTEXT_LINES: Final = 3
MAX_MESSAGE: Final = 8192


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.dirname(os.__file__)}
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots if r))


class InApp:
    """Decides whether a frame is the application's own code; cached per code object.

    Library frames: the standard library, site-packages/dist-packages, and kansoku itself (but
    `kansoku.demo`, which is an application). `include`/`exclude` are module prefixes that win.
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._roots = _library_roots()
        # Keyed by id(): hashing a code object hashes its bytecode. The value holds the code object,
        # so its id cannot be reused while the entry lives.
        self._meta: dict[int, tuple[CodeType, tuple[str, str, str, bool]]] = {}

    def meta(self, code: CodeType, frame: FrameType) -> tuple[str, str, str, bool]:
        """(abs_path, module, function, in_app) of a frame's code."""
        found = self._meta.get(id(code))
        if found is not None:
            return found[1]
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        module = module if isinstance(module, str) else ""
        path = code.co_filename
        meta = (path, module, getattr(code, "co_qualname", code.co_name), self._decide(path, module))
        if len(self._meta) >= 20_000:
            self._meta.clear()
        self._meta[id(code)] = (code, meta)
        return meta

    def _decide(self, path: str, module: str) -> bool:
        if self.include and module.startswith(self.include):
            return True
        if self.exclude and module.startswith(self.exclude):
            return False
        if module == "kansoku" or (module.startswith("kansoku.") and not module.startswith("kansoku.demo")):
            return False
        if path.startswith("<") or "site-packages" in path or "dist-packages" in path:
            return False
        return not os.path.realpath(path).startswith(self._roots)


@dataclass(slots=True)
class RawException:
    """One exception of the chain as snapshotted on the caller's thread."""

    type_name: str
    module: str
    message: str
    frames: list[tuple[CodeType, int, tuple[str, str, str, bool], dict[str, Any] | None]]
    omitted: int
    relation: Relation

    def chain_frames(self) -> ChainFrames:
        """What grouping needs of this exception."""
        return ChainFrames(self.type_name, [(m[1], m[2], m[3]) for _, _, m, _ in self.frames])


def _frames(
    exc: BaseException, in_app: InApp, local_values: Callable[[dict[str, Any]], dict[str, Any]] | None
) -> tuple[list[tuple[CodeType, int, tuple[str, str, str, bool], dict[str, Any] | None]], int]:
    stack = stack_of(exc)  # the walk the log line and the span share
    frames = []
    for entry in stack.entries:
        frame = entry.tb_frame
        code = frame.f_code
        meta = in_app.meta(code, frame)
        values = local_values(frame.f_locals) if local_values is not None and meta[3] else None
        frames.append((code, entry.tb_lineno or 0, meta, values))
    return frames, stack.omitted


def snapshot_chain(
    exc: BaseException,
    in_app: InApp,
    local_values: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[RawException]:
    """The exception chain with code locations only (and in-app locals through `local_values`)."""
    out = []
    for item, relation in walk_chain(exc):
        frames, omitted = _frames(item, in_app, local_values)
        cls = type(item)
        out.append(RawException(qualified_name(cls), getattr(cls, "__module__", "") or "",
                                safe_str(item)[:MAX_MESSAGE], frames, omitted, relation))
    return out


def cache_key(chain: Sequence[RawException]) -> tuple[tuple[Any, ...], tuple[CodeType, ...]]:
    """The chain's code locations (types and code ids) for the grouping cache, and the code
    objects, which the cache keeps alive so that their ids stay theirs."""
    key = tuple((raw.type_name, *(id(f[0]) for f in raw.frames)) for raw in chain)
    return key, tuple(f[0] for raw in chain for f in raw.frames)


# --- writer side ----------------------------------------------------------------------------------

class FrameExpander:
    """Turns snapshotted frames into event frames, with redacted source context.

    A frame of the same code at the same line is built once (bounded cache) and copied after, so
    a burst of one error costs a dict copy per frame rather than a file read and a scrub.
    """

    def __init__(self, scrub: Callable[[str], str], max_entries: int = 20_000) -> None:
        self.scrub = scrub
        self.max_entries = max_entries
        self._frames: dict[tuple[int, int], tuple[CodeType, FrameInfo]] = {}

    def expand(self, chain: Sequence[RawException]) -> list[ExceptionInfo]:
        """The chain as event data: frames with file, module, function, line, in-app and source."""
        out: list[ExceptionInfo] = []
        for raw in chain:
            frames: list[FrameInfo] = []
            for code, lineno, meta, values in raw.frames:
                frame = FrameInfo(**self._frame(code, lineno, meta))
                if values is not None:
                    frame["locals"] = values
                frames.append(frame)
            info = ExceptionInfo(type=raw.type_name, module=raw.module, message=self.scrub(raw.message),
                                 frames=frames, relation=raw.relation)
            if raw.omitted:
                info["frames_omitted"] = raw.omitted
            out.append(info)
        return out

    def _frame(self, code: CodeType, lineno: int, meta: tuple[str, str, str, bool]) -> FrameInfo:
        cached = self._frames.get((id(code), lineno))
        if cached is not None and cached[0] is code:
            return cached[1]
        path, module, function, app = meta
        frame = FrameInfo(filename=_short_path(path), abs_path=path, module=module, function=function,
                          lineno=lineno, in_app=app)
        if app:  # source context for the application's own frames only
            line, before, after = self._context(path, lineno)
            if line:
                frame["context_line"], frame["pre_context"], frame["post_context"] = line, before, after
        if len(self._frames) >= self.max_entries:
            self._frames.clear()
        self._frames[(id(code), lineno)] = (code, frame)
        return frame

    def _context(self, path: str, lineno: int) -> tuple[str, list[str], list[str]]:
        """(line, lines before, lines after), redacted."""
        lines = linecache.getlines(path)
        if not lines or lineno < 1 or lineno > len(lines):
            return "", [], []
        first = max(lineno - 1 - CONTEXT_LINES, 0)
        pick = [self.scrub(line.rstrip("\n")[:400]) for line in lines[first:lineno + CONTEXT_LINES]]
        at = lineno - 1 - first
        return pick[at], pick[:at], pick[at + 1:]


def culprit_of(exceptions: Sequence[ExceptionInfo]) -> str:
    """`module.function` of the innermost in-app frame of the raised exception."""
    if not exceptions:
        return ""
    frames = exceptions[-1].get("frames", [])
    chosen = next((f for f in reversed(frames) if f.get("in_app")), frames[-1] if frames else None)
    if chosen is None:
        return ""
    module, function = chosen.get("module", ""), chosen.get("function", "")
    return f"{module}.{function}" if module else function


@functools.lru_cache(maxsize=4096)
def _short_path(path: str) -> str:
    """The path relative to the entry of sys.path that holds it (what tracebacks usually show)."""
    best = path
    for entry in sys.path:
        if entry and path.startswith(entry.rstrip(os.sep) + os.sep):
            candidate = path[len(entry.rstrip(os.sep)) + 1:]
            if len(candidate) < len(best):
                best = candidate
    return best
