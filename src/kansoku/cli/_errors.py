"""Commands over captured errors: `errors list|show|resolve|ignore|reopen`, `stats`."""

from __future__ import annotations

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


@click.group()
def errors() -> None:
    """List, inspect and change the state of captured error groups.

    A group is every occurrence of one error (same type, same place in your code); an ID may be
    the group's number, one of its event ids, or its group key.
    """


@errors.command("list")
@click.option("--status", default="unresolved", show_default=True,
              help="unresolved, resolved, ignored, a comma-separated list, or `all`.")
@click.option("--severity", help="low, medium, high, critical, emergency (comma-separated).")
@click.option("--category", help="business_logic, database, security... (comma-separated).")
@click.option("--search", "text", metavar="TEXT", help="Only groups whose title, message or culprit contains TEXT.")
@click.option("--sort", type=click.Choice(["last_seen", "count", "first_seen"]), default="last_seen",
              show_default=True, help="Newest, most frequent, or most recently new first.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200), help="Groups per page.")
@click.option("--offset", default=0, type=click.IntRange(0), help="Skip this many groups (paging).")
@JSON
@DB_URL
def errors_list(status: str, severity: str | None, category: str | None, text: str | None, sort: str,
                limit: int, offset: int, as_json: bool, database_url: str | None) -> None:
    """List error groups, most recent first.

    \b
    Examples:
      kansoku errors list
      kansoku errors list --status all --sort count --limit 5
      kansoku errors list --severity high,critical --category business_logic
      kansoku errors list --search "exceeds limit" --json | jq '.items[].id'
    """
    from kansoku.store import queries

    wanted = None if status == "all" else status
    page = _query(database_url, lambda engine: queries.list_groups(
        engine, status=wanted, severity=severity, category=category, text=text, sort=sort, limit=limit,
        offset=offset))
    if as_json:
        echo_json(page)
        return
    if not page["items"]:
        click.echo(f"no error groups match (status {status}); try --status all")
        return
    rows = [{**g, "last_seen": format_time(g["last_seen"]), "title": g["title"]} for g in page["items"]]
    echo_table(rows, ["id", "status", "severity", "category", "count", "users_affected", "last_seen", "title"])
    shown_to = offset + len(page["items"])
    more = f"; next page: --offset {shown_to}" if shown_to < page["total"] else ""
    click.echo(f"{offset + 1}-{shown_to} of {page['total']} group(s){more}. Details: kansoku errors show ID")


@errors.command("show")
@click.argument("ident", metavar="ID")
@click.option("--events", default=1, show_default=True, type=click.IntRange(0, 200),
              help="How many recent events to include.")
@JSON
@DB_URL
def errors_show(ident: str, events: int, as_json: bool, database_url: str | None) -> None:
    """Show one error group and its latest events (exception chain, frames, request, trace).

    \b
    Examples:
      kansoku errors show 12
      kansoku errors show 6f1c0d...        # an event id from a log line or a 500 response
      kansoku errors show 12 --events 5 --json
    """
    from kansoku.store import queries

    group = _query(database_url, lambda engine: queries.get_group(engine, ident, events=events))
    if group is None:
        raise _not_found(ident)
    if as_json:
        echo_json(group)
        return
    click.echo(f"#{group['id']} {group['title']}  [{group['status']}{', regressed' if group['regressed'] else ''}]")
    click.echo(f"  severity {group['severity']} · category {group['category']} · {group['count']} event(s) · "
               f"{group['users_affected']} user(s) · service {group['service']} ({group['environment']})")
    click.echo(f"  first seen {format_time(group['first_seen'])} · last seen {format_time(group['last_seen'])}")
    click.echo(f"  culprit {group['culprit'] or '-'}")
    for event in group["events"]:
        _echo_event(event)


def _echo_event(event: dict[str, Any]) -> None:
    ids = " ".join(f"{key} {event[key]}" for key in ("request_id", "trace_id") if event.get(key))
    click.echo(f"\n  event {event.get('event_id')} at {format_time(event.get('timestamp'))}  {ids}".rstrip())
    request = event.get("request") or {}
    if request:
        click.echo(f"    request {request.get('method', '')} {request.get('route') or request.get('url', '')}")
    for exc in event.get("exceptions", []):
        click.echo(f"    {exc.get('type')}: {exc.get('message')}")
        for frame in exc.get("frames", [])[-8:]:
            marker = "" if frame.get("in_app", True) else " (library)"
            click.echo(f"      at {frame.get('filename')}:{frame.get('lineno')} in {frame.get('function')}{marker}")


def _state_command(action: str, status: str, doc: str, *options: Any) -> click.Command:
    """`errors resolve|ignore|reopen ID`: set the group's status."""

    def command(ident: str, as_json: bool, database_url: str | None, release: str | None = None) -> None:
        from kansoku.store import queries

        def change(engine: Any) -> Any:
            group = queries.set_status(engine, ident, status, release=release)
            if group is not None and status == "resolved":
                _announce_resolution(engine, group, database_url)
            return group

        group = _query(database_url, change)
        if group is None:
            raise _not_found(ident)
        if as_json:
            echo_json(group)
        else:
            click.echo(f"#{group['id']} {group['title']}: {status}")

    command.__doc__ = doc
    for option in (*options, DB_URL, JSON, click.argument("ident", metavar="ID")):
        command = option(command)
    return click.command(action)(command)


errors.add_command(_state_command("resolve", "resolved", """Mark a group resolved; a new event reopens it.

    \b
    Examples:
      kansoku errors resolve 12
      kansoku errors resolve 12 --release 2.4.1   # fixed in 2.4.1: only newer releases regress
    """, click.option("--release", help="The release that fixes it.")))
errors.add_command(_state_command("ignore", "ignored", """Ignore a group: it stays counted but leaves the default list.

    \b
    Examples:
      kansoku errors ignore 12
    """))
errors.add_command(_state_command("reopen", "unresolved", """Reopen a resolved or ignored group.

    \b
    Examples:
      kansoku errors reopen 12
    """))


@click.command()
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1, 24 * 366),
              help="The window: the last N hours, counting the current one.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 100), help="Most frequent groups shown.")
@JSON
@DB_URL
def stats(hours: int, top: int, as_json: bool, database_url: str | None) -> None:
    """Error statistics: totals, unique groups, by category and severity, most frequent.

    The chapter's get_error_statistics(hours), computed from the store (exact across restarts,
    processes and retention).

    \b
    Examples:
      kansoku stats
      kansoku stats --hours 168 --json
    """
    from kansoku.store import queries

    data = _query(database_url, lambda engine: queries.statistics(engine, hours=hours, top=top))
    if as_json:
        echo_json(data)
        return
    click.echo(f"errors in the last {hours} h (since {format_time(data['since'])}): {data['total_errors']} "
               f"event(s) in {data['unique_errors']} group(s)")
    for title, breakdown in (("by category", data["category_breakdown"]), ("by severity", data["severity_breakdown"])):
        if breakdown:
            parts = ", ".join(f"{name} {count}" for name, count in sorted(breakdown.items(), key=lambda kv: -kv[1]))
            click.echo(f"  {title}: {parts}")
    if data["most_frequent_errors"]:
        click.echo("most frequent:")
        echo_table(data["most_frequent_errors"], ["id", "count", "severity", "category", "status", "title"])


def _announce_resolution(engine: Any, group: dict[str, Any], database_url: str | None) -> None:
    """Queue resolutions for the channels whose alerts fired on the group (sent by a dispatcher)."""
    from kansoku.alerts import AlertEngine

    AlertEngine(load_settings_or_exit(database_url=database_url), engine).on_resolve(group)


def _query(database_url: str | None, call: Any) -> Any:
    """Run `call(engine)` on the store; bad filter values are usage errors, store failures exit 4."""
    settings = load_settings_or_exit(database_url=database_url)
    with open_store(settings, read_only=True) as store:
        try:
            return call(store.engine)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except Exception as exc:
            raise store_error(settings, exc) from None


def _not_found(ident: str) -> CliError:
    return CliError(f"no error group or event {ident!r}; `kansoku errors list --status all` shows the ids",
                    EXIT_NOT_FOUND)
