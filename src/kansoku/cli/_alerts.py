"""Commands over alerting: `alerts list|test|silence|unsilence`."""

from __future__ import annotations

import getpass
import re
import time
from typing import Any

import click

from kansoku.cli._common import (
    DB_URL,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JSON,
    CliError,
    alerting_or_exit,
    echo_json,
    echo_table,
    format_time,
    load_settings_or_exit,
    open_store,
    store_error,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhd])$")


@click.group()
def alerts() -> None:
    """Alert rules, channels, test notifications and silences.

    Rules and channels are configured in kansoku.toml ([[alerts.rules]], [[alerts.channels]]);
    see docs/alert-rules.md.
    """


@alerts.command("list")
@JSON
@DB_URL
def alerts_list(as_json: bool, database_url: str | None) -> None:
    """Show the alert rules, the channels, the active silences and the latest deliveries.

    \b
    Examples:
      kansoku alerts list
      kansoku alerts list --json | jq '.rules[].name'
    """
    from kansoku.alerts.silences import list_silences
    from kansoku.store import queries

    settings = load_settings_or_exit(database_url=database_url)
    config = alerting_or_exit(settings)
    with open_store(settings, read_only=True) as store:
        try:
            silences = [s.as_dict() for s in list_silences(store.engine, time.time())]
            deliveries = queries.deliveries(store.engine, limit=10)["items"]
        except Exception as exc:
            raise store_error(settings, exc) from None
    rules = [{**rule.model_dump(mode="json", exclude_defaults=True), "name": rule.name, "kind": rule.kind,
              "channels": config.channels_of(rule)} for rule in config.rules]
    channels = [{"name": name, "type": channel.type} for name, channel in config.channels.items()]
    if as_json:
        echo_json({"rules": rules, "channels": channels, "silences": silences, "deliveries": deliveries})
        return
    click.echo("rules:")
    echo_table([{**r, "when": _when(r), "channels": ", ".join(r["channels"])} for r in rules],
               ["name", "kind", "when", "channels"])
    click.echo("\nchannels:")
    echo_table(channels, ["name", "type"])
    click.echo(f"\nactive silences: {len(silences) or 'none'}")
    if silences:
        echo_table([{**s, "ends_at": format_time(s["ends_at"]), "matches": _matchers(s)} for s in silences],
                   ["id", "ends_at", "matches", "comment"])
    click.echo(f"\nlatest deliveries: {len(deliveries) or 'none'}")
    if deliveries:
        echo_table([{**d, "created_at": format_time(d.get("created_at"))} for d in deliveries],
                   ["id", "created_at", "channel", "rule", "kind", "status", "attempts"])


def _when(rule: dict[str, Any]) -> str:
    if rule["kind"] in ("http_error_ratio", "http_latency"):
        return f"{rule['kind']} > {rule.get('threshold')} over {rule.get('time_window_minutes', 5)} min"
    if rule["kind"] != "errors":
        return f"{rule['kind']}, severity >= {rule.get('severity_threshold', 'low')}"
    count, minutes = rule.get("error_count_threshold", 1), rule.get("time_window_minutes", 5)
    categories = f" in {'/'.join(rule['categories'])}" if rule.get("categories") else ""
    return f"{count} error(s){categories} in {minutes} min, severity >= {rule.get('severity_threshold', 'low')}"


def _matchers(silence: dict[str, Any]) -> str:
    return " ".join(f"{key}={silence[key]}" for key in ("rule", "group_key", "tag", "text") if silence.get(key))


@alerts.command("test")
@click.argument("channel")
@JSON
def alerts_test(channel: str, as_json: bool) -> None:
    """Send a test notification through CHANNEL now (no rule, no outbox) and report the outcome.

    Exit code 0 when the channel accepted it, 1 when the delivery failed (the reason is printed),
    5 when no channel has that name.

    \b
    Examples:
      kansoku alerts test log
      kansoku alerts test ops-slack
      kansoku alerts test pager --json
    """
    from kansoku.alerts import send_test

    settings = load_settings_or_exit()
    config = alerting_or_exit(settings)
    if channel not in config.channels:
        raise CliError(f"no channel named {channel!r}; configured: {', '.join(config.channels)} "
                       "(add one with [[alerts.channels]] in kansoku.toml)", EXIT_NOT_FOUND)
    result = send_test(channel, settings)
    if as_json:
        echo_json({"channel": result.channel, "ok": result.ok, "error": result.error, "detail": result.detail})
    elif result.ok:
        click.echo(f"{channel}: test notification delivered ({result.detail})")
    if not result.ok:
        raise CliError(f"{channel}: delivery failed: {result.error}\nCheck the channel's settings in kansoku.toml "
                       "(URL, token, host) and that this machine can reach it.", EXIT_FAILURE)


@alerts.command("silence")
@click.option("--rule", help="Silence this rule (a name from `kansoku alerts list`).")
@click.option("--group", "group", metavar="ID", help="Silence one error group (id, event id or group key).")
@click.option("--tag", metavar="KEY=VALUE", help="Silence events with this tag.")
@click.option("--text", help="Silence groups whose title contains TEXT.")
@click.option("--for", "duration", default="1h", show_default=True, metavar="DURATION",
              help="How long: 30m, 2h, 1d...")
@click.option("--comment", default="", help="Why (shown in the dashboard).")
@JSON
@DB_URL
def alerts_silence(rule: str | None, group: str | None, tag: str | None, text: str | None, duration: str,
                   comment: str, as_json: bool, database_url: str | None) -> None:
    """Stop notifications that match every given matcher, for a while.

    Silenced alerts are still evaluated and counted; they are just not sent. Every process
    sharing the store honours the silence within seconds.

    \b
    Examples:
      kansoku alerts silence --rule payment_failures --for 2h --comment "gateway maintenance"
      kansoku alerts silence --group 12 --for 1d
      kansoku alerts silence --tag region=eu-west --for 30m
    """
    from kansoku.alerts.silences import create_silence
    from kansoku.exceptions import ConfigError
    from kansoku.store import queries

    minutes = _minutes(duration)
    settings = load_settings_or_exit(database_url=database_url)
    if rule is not None and rule not in {r.name for r in alerting_or_exit(settings).rules}:
        raise CliError(f"no rule named {rule!r}; `kansoku alerts list` shows the rules", EXIT_NOT_FOUND)
    with open_store(settings) as store:
        group_key = _group_key(store.engine, group, queries) if group else None
        now = time.time()
        try:
            silence = create_silence(store.engine, now=now, ends_at=now + minutes * 60, rule=rule,
                                     group_key=group_key, tag=tag, text=text, comment=comment,
                                     created_by=_user())
        except ConfigError as exc:
            raise CliError(f"{exc}; pass --rule, --group, --tag or --text", EXIT_USAGE) from None
        except Exception as exc:
            raise store_error(settings, exc) from None
    if as_json:
        echo_json(silence.as_dict())
    else:
        click.echo(f"silence {silence.id} until {format_time(silence.ends_at)} UTC: {_matchers(silence.as_dict())}"
                   f" (end it early: kansoku alerts unsilence {silence.id})")


@alerts.command("unsilence")
@click.argument("silence_id", type=int, metavar="ID")
@DB_URL
def alerts_unsilence(silence_id: int, database_url: str | None) -> None:
    """End a silence now.

    \b
    Examples:
      kansoku alerts unsilence 3
    """
    from kansoku.alerts.silences import expire_silence

    settings = load_settings_or_exit(database_url=database_url)
    with open_store(settings, read_only=True) as store:
        ended = expire_silence(store.engine, silence_id, time.time())
    if not ended:
        raise CliError(f"no active silence {silence_id}; `kansoku alerts list` shows them", EXIT_NOT_FOUND)
    click.echo(f"silence {silence_id} ended")


def _minutes(duration: str) -> float:
    match = _DURATION.match(duration.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise CliError(f"--for {duration!r}: expected a positive number and a unit, like 30m, 2h or 1d", EXIT_USAGE)
    return float(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2)]


def _group_key(engine: Any, ident: str, queries: Any) -> str:
    group = queries.get_group(engine, ident, events=0)
    if group is None:
        raise CliError(f"no error group {ident!r}; `kansoku errors list` shows the ids", EXIT_NOT_FOUND)
    return str(group["group_key"])


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without /etc/passwd entries
        return "cli"
