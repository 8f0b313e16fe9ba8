"""One walk of an exception's traceback, shared by the error event, the log line and the span."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

from kansoku.logs import exception_data
from kansoku.logs._frames import format_exception, stack_of, walk_chain


def _fail(depth: int) -> None:
    if depth == 0:
        raise ValueError("bottom")
    _fail(depth - 1)


def _raised(depth: int = 0) -> ValueError:
    try:
        _fail(depth)
    except ValueError as exc:
        return exc
    raise AssertionError("not raised")


def test_the_walk_is_cached_per_traceback_head() -> None:
    """A second reader gets the same walk; an exception that travelled further up is walked again."""
    exc = _raised()
    first = stack_of(exc)
    assert stack_of(exc) is first
    try:
        raise exc
    except ValueError:
        pass
    assert len(stack_of(exc).entries) == len(first.entries) + 1


def test_deep_tracebacks_keep_the_outer_10_and_inner_40_frames() -> None:
    """A traceback of 80 frames keeps 50, says how many were left out, in the log data and the text."""
    exc = _raised(79)
    data = exception_data(exc)
    assert (len(data["frames"]), data["frames_omitted"]) == (50, 31)
    assert data["frames"][0]["function"] == "_raised"
    text = format_exception([(type(exc).__name__, str(exc), stack_of(exc).locations(), 31, "")])
    assert "[Previous 31 frames omitted]" in text


def test_formatted_text_reads_like_pythons_traceback() -> None:
    """The text has Python's frame lines, source lines, chain separators and final lines (no carets)."""
    try:
        try:
            {}["missing"]
        except KeyError as inner:
            raise RuntimeError("lookup failed") from inner
    except RuntimeError as exc:
        outer = exc
    chain = [(type(item).__name__, str(item), stack_of(item).locations(), 0, relation)
             for item, relation in walk_chain(outer)]
    ours = format_exception(chain)
    theirs = "".join(traceback.format_exception(outer))
    strip = [line for line in theirs.splitlines() if line.strip() and set(line.strip()) - set("^~")]
    assert [line for line in ours.splitlines() if line.strip()] == strip


def test_a_failing_request_reads_and_compiles_no_source_on_the_request_thread(tmp_path: Path) -> None:
    """Through instrument(): the event, the error line and the span's exception event make no file
    open and no compile() (linecache, caret parsing) on the thread that serves the request."""
    script = textwrap.dedent(f"""
        import asyncio, sys, threading
        from fastapi import FastAPI
        import kansoku

        app = FastAPI()

        @app.get("/fail")
        async def fail():
            raise ValueError("boom")

        app = kansoku.instrument(app, database_url="sqlite:///{tmp_path}/k.db", trace_sample_rate=1.0,
                                 log_format="json")
        seen, watching = [], threading.get_ident()

        def hook(event, args):
            if event in ("open", "compile") and threading.get_ident() == watching and armed:
                seen.append((event, str(args[0])[:80]))

        armed = False
        sys.addaudithook(hook)

        async def main():
            global armed
            statuses = []
            async def receive():
                return {{"type": "http.request", "body": b"", "more_body": False}}
            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
            scope = {{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1", "method": "GET",
                      "scheme": "http", "path": "/fail", "raw_path": b"/fail", "query_string": b"",
                      "root_path": "", "headers": [], "client": ("127.0.0.1", 1), "server": ("x", 80)}}
            for warm in (True, False):
                armed = not warm
                try:
                    await app(dict(scope), receive, send)
                except ValueError:
                    pass
            armed = False
            kansoku.runtime.current().close(10)
            assert statuses == [500, 500], statuses

        asyncio.run(main())
        open({str(tmp_path / "seen.txt")!r}, "w").write(repr(seen))
    """)
    subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert (tmp_path / "seen.txt").read_text() == "[]"  # in a file: kansoku's log lines share stdout
