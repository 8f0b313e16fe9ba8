"""`kansoku logs search|tail` and `kansoku traces search|show`: the query syntax from the shell."""

from __future__ import annotations

import time
from typing import Any

import click

from kansoku.cli._common import (
    DB_URL,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JSON,
    CliError,
    echo_json,
    echo_table,
    format_time,
    load_settings_or_exit,
    open_store,
    store_error,
)

QUERY_HELP = """\b
Query syntax (docs/search.md):
  "payment failed"      words in the message     order_id=1234   any field
  route:/orders/{id}    the same with a colon    level>=warning  levels by name
  duration>500ms        durations                status>=500     numbers
  -service=shop         negation                 since:1h        a time range"""


def _with_since(query: str, since: str | None) -> str:
    return f"{query} since:{since}".strip() if since else query


def _run(database_url: str | None, call: Any) -> Any:
    """`call(engine)` on the store; a bad query is a usage error with its caret, store failures exit 4."""
    settings = load_settings_or_exit(database_url=database_url)
    with open_store(settings) as store:
        try:
            return call(store.engine)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except Exception as exc:
            raise store_error(settings, exc) from None


def format_line(line: dict[str, Any]) -> str:
    """One stored log line as one line of text: time, level, logger, message, fields, ids."""
    fields = " ".join(f"{key}={_short(value)}" for key, value in line["attributes"].items()
                      if key not in ("category",))
    ids = " ".join(f"{name}={line[name]}" for name in ("request_id", "trace_id") if line.get(name))
    parts = [line["time"], f"{line['level'].upper():<8}", f"[{line['service']}:{line['logger']}]", line["message"],
             fields, ids]
    return " ".join(part for part in parts if part)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, dict | list) else "{…}"
    return text if len(text) <= 60 else text[:57] + "..."


@click.group(epilog=QUERY_HELP)
def logs() -> None:
    """Search the stored log lines, or follow them as they arrive."""


@logs.command("search", epilog=QUERY_HELP)
@click.argument("query", default="")
@click.option("--since", metavar="WHEN", help="Only lines since: 15m, 1h, 7d or an ISO time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000), help="Lines to show.")
@click.option("--before", type=int, metavar="ID", help="Lines older than this id (the next page).")
@JSON
@DB_URL
def logs_search(query: str, since: str | None, limit: int, before: int | None, as_json: bool,
                database_url: str | None) -> None:
    """Search stored log lines, newest first.

    \b
    Examples:
      kansoku logs search 'order_id=1234'
      kansoku logs search '"payment failed" level>=warning' --since 1h
      kansoku logs search 'service=shop status>=500' --json | jq '.lines[].trace_id'
    """
    from kansoku.store.search import search_logs

    page = _run(database_url, lambda engine: search_logs(engine, _with_since(query, since), limit=limit,
                                                         before=before))
    if as_json:
        echo_json(page)
        return
    for line in page["lines"]:
        click.echo(format_line(line))
    more = f"; older: --before {page['next_before']}" if page["next_before"] else ""
    click.echo(f"{len(page['lines'])} line(s){more}", err=True)


@logs.command("tail", epilog=QUERY_HELP)
@click.argument("query", default="")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds between polls.")
@click.option("--lines", "backlog", default=10, show_default=True, type=click.IntRange(0, 1000),
              help="Recent lines to show first.")
@click.option("--polls", type=click.IntRange(1), help="Stop after this many polls (scripts).")
@DB_URL
def logs_tail(query: str, interval: float, backlog: int, polls: int | None, database_url: str | None) -> None:
    """Follow stored log lines matching QUERY as they arrive (Ctrl-C stops).

    \b
    Examples:
      kansoku logs tail
      kansoku logs tail 'level>=warning service=shop'
    """
    from kansoku.store.search import search_logs

    settings = load_settings_or_exit(database_url=database_url)
    with open_store(settings) as store:
        try:
            first = search_logs(store.engine, query, limit=max(backlog, 1))["lines"]
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        for line in reversed(first[:backlog]):
            click.echo(format_line(line))
        last = first[0]["id"] if first else 0
        done = 0
        try:
            while polls is None or done < polls:
                time.sleep(interval)
                done += 1
                new = search_logs(store.engine, query, limit=1000, after=last)["lines"]
                for line in reversed(new):
                    click.echo(format_line(line))
                if new:
                    last = new[0]["id"]
        except KeyboardInterrupt:
            return


@click.group(epilog=QUERY_HELP)
def traces() -> None:
    """Search stored traces, or show one as a waterfall with its log lines."""


@traces.command("search", epilog=QUERY_HELP + """

\b
For traces: service, name, kind, route, method, status (HTTP number, or
unset/ok/error), error=true, duration; any other field is an attribute of any
span in the trace (db.system=postgresql).""")
@click.argument("query", default="")
@click.option("--since", metavar="WHEN", help="Only traces since: 15m, 1h, 7d or an ISO time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="Traces to show.")
@JSON
@DB_URL
def traces_search(query: str, since: str | None, limit: int, as_json: bool, database_url: str | None) -> None:
    """Search stored traces (their root spans), newest first.

    \b
    Examples:
      kansoku traces search 'service=shop route:/orders/{id} duration>500ms'
      kansoku traces search 'status>=500 since:1h'
      kansoku traces search 'error=true' --json
    """
    from kansoku.store.trace_search import search_traces

    page = _run(database_url, lambda engine: search_traces(engine, _with_since(query, since), limit=limit))
    if as_json:
        echo_json(page)
        return
    if not page["traces"]:
        click.echo("no traces match")
        return
    rows = [{**t, "start_time": format_time(t["start_time"]), "duration_ms": f"{t['duration_ms']:.1f}",
             "http_status": t["http_status"] or ""} for t in page["traces"]]
    echo_table(rows, ["start_time", "trace_id", "service", "name", "status", "http_status", "duration_ms"])
    click.echo(f"{len(rows)} trace(s). Waterfall: kansoku traces show TRACE_ID")


@traces.command("show")
@click.argument("trace_id")
@JSON
@DB_URL
def traces_show(trace_id: str, as_json: bool, database_url: str | None) -> None:
    """Show one trace: its spans as a text waterfall, then its log lines.

    \b
    Examples:
      kansoku traces show 4bf92f3577b34da6a3ce929d0e0e4736
      kansoku traces show 4bf92f3577b34da6a3ce929d0e0e4736 --json | jq '.logs[].message'
    """
    from kansoku.store.search import search_logs
    from kansoku.store.trace_search import get_trace

    trace_id = trace_id.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise CliError(f"{trace_id!r} is not a trace id (32 hexadecimal digits)", EXIT_USAGE)
    spans, lines = _run(database_url, lambda engine: (
        get_trace(engine, trace_id), search_logs(engine, f"trace_id={trace_id}", limit=1000)["lines"][::-1]))
    if not spans and not lines:
        raise CliError(f"no spans or log lines stored for trace {trace_id}", EXIT_NOT_FOUND)
    if as_json:
        echo_json({"trace_id": trace_id, "spans": spans, "logs": lines})
        return
    click.echo(text_waterfall(spans))
    if lines:
        click.echo(f"\nlog lines ({len(lines)}):")
        for line in lines:
            click.echo("  " + format_line(line))


def text_waterfall(spans: list[dict[str, Any]], width: int = 30) -> str:
    """Spans as text: tree order, indented by depth, with a bar placed on the trace's time line."""
    from kansoku.web.dashboard.present import waterfall

    out = []
    for row in waterfall(spans):
        span = row.span
        start = int(row.offset / 1000 * width)
        length = max(1, round(row.width / 1000 * width))
        bar = (" " * start + "█" * length)[:width].ljust(width)
        status = " ERROR" if span["status"] == "ERROR" else ""
        name = ("  " * row.depth + str(span["name"]))[:48]
        out.append(f"{name:<48} |{bar}| {float(span['duration_ms']):9.1f} ms  +{row.offset_ms:.1f}  "
                   f"{span['service']}{status}")
    return "\n".join(out) or "(no spans stored for this trace)"
