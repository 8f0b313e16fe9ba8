"""The alert engine: decide when a rule fires, claim the right to notify, write the outbox.

Per event and rule the work is O(1): a windowed counter in memory, a check of the suppression
window this process last saw, and (only when a rule may fire) one short transaction that claims the
window in `kansoku_alert_state`::

    INSERT ... ON CONFLICT DO NOTHING                         -- the state row exists
    UPDATE ... SET last_sent = now WHERE last_sent <= now - suppression   -- rowcount 1: we won

The winner, in the same transaction, takes the count of events suppressed since the last
notification and writes one outbox row per channel. Any number of threads and processes sharing the
store send one notification per window. Events suppressed locally are added to the shared count in
batches. HTTP rules are evaluated by `tick()` (the dispatcher calls it), which also re-sends firing
alerts to Alertmanager.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kansoku._safety import suppress_internal_errors
from kansoku.alerts import httprules
from kansoku.alerts.outbox import enqueue, grouping_time
from kansoku.alerts.render import AlertItem, alert_item, event_title, http_item, monitor_item, row_payload
from kansoku.alerts.rules import (
    DEFAULT_MONITOR_RULE,
    HTTP_KINDS,
    MONITOR_KIND,
    AlertingConfig,
    AlertRule,
    load_alerting,
    severity_rank,
)
from kansoku.alerts.silences import SilenceCache
from kansoku.alerts.window import WindowCounters
from kansoku.monitors.schedule import MonitorSpec, parse_monitors
from kansoku.redact import Redactor
from kansoku.settings import Settings
from kansoku.store import write_transaction
from kansoku.store.tables import alert_state, error_groups, outbox
from kansoku.typing import Clock, ErrorChange, ErrorEvent, IdFactory

__all__ = ["RESOLVING_CHANNELS", "AlertEngine"]

RESOLVING_CHANNELS: Final = frozenset({"pagerduty", "slack", "alertmanager", "webhook", "log"})
Key = tuple[str, str]
_ADD_SUPPRESSED: Final = (
    update(alert_state)
    .where(alert_state.c.rule == bindparam("r"), alert_state.c.group_key == bindparam("g"))
    .values(suppressed=alert_state.c.suppressed + bindparam("n"))
)


def _new_id() -> str:
    return uuid.uuid4().hex


class AlertEngine:
    """Evaluates rules on error events and HTTP statistics; writes notifications to the outbox."""

    def __init__(
        self, source: Settings | AlertingConfig, engine: Engine, *, clock: Clock = time.time,
        new_id: IdFactory = _new_id, flush_seconds: float = 5.0, max_keys: int = 10_000,
        monitors: tuple[MonitorSpec, ...] | None = None,
    ) -> None:
        self.config = load_alerting(source) if isinstance(source, Settings) else source
        if monitors is None:
            monitors = parse_monitors(source.monitors) if isinstance(source, Settings) else ()
        self.engine = engine
        self.clock = clock
        self.new_id = new_id
        self.flush_seconds = flush_seconds
        site = self.config.site
        self.redactor = Redactor(site.redact_keys, allow_keys=site.redact_allow_keys, allow_pii=site.allow_pii,
                                 max_string=2000)
        rules = list(self.config.rules)
        if not any(rule.kind == MONITOR_KIND for rule in rules):
            rules.append(DEFAULT_MONITOR_RULE)
        enabled = [rule for rule in rules if rule.enabled]
        self.rules = {rule.name: rule for rule in rules}
        self._error_rules = [rule for rule in enabled if rule.kind not in HTTP_KINDS and rule.kind != MONITOR_KIND]
        self._monitor_rules = [rule for rule in enabled if rule.kind == MONITOR_KIND]
        self._monitors = monitors  # kansoku.toml's, written to the store at the first tick
        self._http_rules = [rule for rule in enabled if rule.kind in HTTP_KINDS]
        self._counters = WindowCounters(max_keys)
        self._until: dict[str, dict[str, float]] = {}  # group -> rule -> suppression end known here
        self._max_keys = max_keys
        self._pending: dict[Key, int] = {}  # suppressed here, not yet added to the store's count
        self._lock = threading.Lock()
        self._last_flush = clock()
        self._last_http: float | None = None
        self.silences = SilenceCache(engine, clock)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # --- error events -----------------------------------------------------------------------------

    def on_error(self, event: ErrorEvent, change: ErrorChange) -> None:
        """ErrorTracker listener: called after `event` was stored; never raises into the tracker."""
        with suppress_internal_errors("alerts.on_error"):
            self._on_error(event, change)

    def _on_error(self, event: ErrorEvent, change: ErrorChange) -> None:
        if change.get("status") == "ignored":  # an ignored group never alerts
            return
        now = self.clock()
        due: list[tuple[AlertRule, str, int]] = []
        with self._lock:
            if change.get("regression"):  # resolved (maybe by another process) and back: windows reopened
                self._forget(change.get("group_key", ""))
            for rule in self._error_rules:
                group = self._group_of(rule, event, change)
                if group is None or not _matches(rule, event):
                    continue
                if rule.kind in ("errors", "frequency"):
                    count = self._counters.add((rule.name, group), rule.time_window_minutes, now)
                    if count < rule.error_count_threshold:
                        continue
                else:
                    count = 1
                key = (rule.name, group)
                if self._until.get(group, {}).get(rule.name, 0.0) > now:
                    self._pending[key] = self._pending.get(key, 0) + 1
                    continue
                due.append((rule, group, count))
            flush = now - self._last_flush >= self.flush_seconds
        title = event_title(event)
        for rule, group, count in due:
            if self.silences.silenced(rule.name, group, title, event.get("tags", {}), now):
                continue
            make = functools.partial(self._item, rule, group, count, event, change, now)
            self._fire(rule, group, now, make)
        if flush:
            self.flush(now)

    def _forget(self, group: str) -> None:
        self._until.pop(group, None)

    @staticmethod
    def _group_of(rule: AlertRule, event: ErrorEvent, change: ErrorChange) -> str | None:
        if rule.kind == "frequency":
            return ""
        if rule.kind == "first_seen" and not change.get("new"):
            return None
        if rule.kind == "regression" and not change.get("regression"):
            return None
        return change.get("group_key") or event.get("group_key") or None

    def _item(self, rule: AlertRule, group: str, count: int, event: ErrorEvent, change: ErrorChange,
              now: float, suppressed: int, conn: Connection) -> AlertItem:
        group_id = change.get("group_id")
        if group_id is None and group:
            query = select(error_groups.c.id).where(error_groups.c.group_key == group)
            group_id = conn.execute(query).scalar()
        return alert_item(rule, event, group_key=group, group_id=group_id, window_count=count,
                          suppressed=suppressed, now=now, site=self.config.site, redactor=self.redactor,
                          count=change.get("count"))

    # --- the claim --------------------------------------------------------------------------------

    def _ensure_state(self, conn: Connection, rule: str, group: str) -> None:
        conn.execute(self._insert(alert_state).values(rule=rule, group_key=group, last_sent=0.0, suppressed=0,
                                                      firing=False).on_conflict_do_nothing())

    def _fire(self, rule: AlertRule, group: str, now: float,
              make_item: Callable[[int, Connection], AlertItem], *, state_rule: str | None = None,
              only: str | None = None) -> bool:
        """Claim the suppression window of (rule, group); the winner writes the outbox rows."""
        name = state_rule or rule.name
        key = (name, group)
        with self._lock:
            pending = self._pending.pop(key, 0)
        where = (alert_state.c.rule == name, alert_state.c.group_key == group)
        with write_transaction(self.engine) as conn:
            if state_rule is not None and not _still_firing(conn, rule.name, group):
                return False  # resolved since the caller read the state: a re-send would reopen it
            self._ensure_state(conn, name, group)
            won = conn.execute(
                update(alert_state).where(*where, alert_state.c.last_sent <= now - rule.suppression_seconds)
                .values(last_sent=now, firing=state_rule is None and rule.kind not in ("frequency",))
            ).rowcount == 1
            if not won:  # another process notified within the window: this event is suppressed
                conn.execute(update(alert_state).where(*where)
                             .values(suppressed=alert_state.c.suppressed + pending + 1))
                last = float(conn.execute(select(alert_state.c.last_sent).where(*where)).scalar_one())
                until = last + rule.suppression_seconds
            else:
                stored = int(conn.execute(select(alert_state.c.suppressed).where(*where)).scalar_one())
                item = make_item(stored + pending, conn)
                first = self._enqueue_trigger(conn, rule, group, item, now, only)
                conn.execute(update(alert_state).where(*where).values(suppressed=0, last_outbox_id=first))
                if state_rule is None:
                    self._start_resend_clocks(conn, rule, group, now)
                until = now + rule.suppression_seconds
        with self._lock:
            if len(self._until) >= self._max_keys:  # bounded; a forgotten window costs one claim query
                live = [(g, r) for g, r in self._until.items() if max(r.values()) > now]
                self._until = dict(live[-self._max_keys // 2:])
            self._until.setdefault(group, {})[name] = until
        return won

    def _enqueue_trigger(self, conn: Connection, rule: AlertRule, group: str, item: AlertItem,
                         now: float, only: str | None = None) -> int | None:
        first: int | None = None
        payload = row_payload(rule, item, rule.recipients)
        for channel in self.config.channels_of(rule):
            config = self.config.channels[channel]
            if only and channel != only:
                continue
            if severity_rank(item["severity"]) < severity_rank(config.min_severity):
                continue
            due = grouping_time(conn, channel=channel, rule=rule.name, now=now,
                                wait=self.config.group_wait_seconds)
            row = enqueue(conn, channel=channel, rule=rule.name, group_key=group, kind="trigger",
                          idempotency_key=self.new_id(), payload=payload, now=now, not_before=due)
            first = first if first is not None else row
        return first

    def flush(self, now: float | None = None) -> None:
        """Add the events suppressed in this process to the store's counts."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = self.clock() if now is None else now
        if not pending:
            return
        # The state rows exist: a key is only counted here after a claim made its row. One
        # executemany for all keys, sorted so that concurrent flushes lock rows in one order.
        params = [{"r": rule, "g": group, "n": count} for (rule, group), count in sorted(pending.items())]
        with write_transaction(self.engine) as conn:
            conn.execute(_ADD_SUPPRESSED, params)

    def close(self) -> None:
        """Flush the suppressed counts (call at shutdown)."""
        with suppress_internal_errors("alerts.close"):
            self.flush()

    # --- resolution -------------------------------------------------------------------------------

    def on_resolve(self, group: Mapping[str, Any] | str) -> int:
        """A group was resolved: send resolutions where its alerts fired; returns rows written."""
        with suppress_internal_errors("alerts.on_resolve"):
            key = group if isinstance(group, str) else str(group["group_key"])
            return self._resolve(key, None, self.clock())
        return 0

    def _resolve(self, group: str, rule_name: str | None, now: float) -> int:
        where = [alert_state.c.group_key == group, alert_state.c.firing.is_(True)]
        if rule_name is not None:
            where.append(alert_state.c.rule == rule_name)
        written = 0
        with write_transaction(self.engine) as conn:
            fired = conn.execute(update(alert_state).where(*where).values(firing=False, last_sent=0.0)
                                 .returning(alert_state.c.rule, alert_state.c.last_outbox_id)).all()
            for name, outbox_id in fired:
                rule = self.rules.get(name)
                payload = None if outbox_id is None else conn.execute(
                    select(outbox.c.payload).where(outbox.c.id == outbox_id)).scalar()
                if rule is None or payload is None:
                    continue
                written += self._enqueue_resolve(conn, rule, group, payload, now)
        with self._lock:
            self._forget(group)
        return written

    def _enqueue_resolve(self, conn: Connection, rule: AlertRule, group: str, payload: Mapping[str, Any],
                         now: float) -> int:
        written = 0
        for channel in self.config.channels_of(rule):
            config = self.config.channels[channel]
            if config.type not in RESOLVING_CHANNELS:
                continue
            if severity_rank(payload["item"]["severity"]) < severity_rank(config.min_severity):
                continue
            enqueue(conn, channel=channel, rule=rule.name, group_key=group, kind="resolve",
                    idempotency_key=self.new_id(), payload=payload, now=now)
            written += 1
        return written

    # --- periodic work ----------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Periodic work: flush counts, evaluate HTTP rules when due, re-send firing alerts."""
        with suppress_internal_errors("alerts.tick"):
            now = self.clock() if now is None else now
            self.flush(now)
            if self._http_rules and (self._last_http is None
                                     or now - self._last_http >= self.config.http_eval_seconds):
                self._last_http = now
                self.evaluate_http(now)
            self._resend_alertmanager(now)
            self.evaluate_monitors(now)

    def evaluate_http_rules(self) -> None:
        """The runtime's periodic hook: the same as `tick()` (it gates the HTTP rules by interval)."""
        self.tick()

    def evaluate_http(self, now: float) -> None:
        """Evaluate the HTTP error-ratio and latency rules on the request statistics of every instance."""
        minute = int(now // 60)
        for rule in self._http_rules:
            if rule.environments and self.config.site.environment not in rule.environments:
                continue
            totals = httprules.window_totals(self.engine, minute - rule.time_window_minutes + 1, minute)
            firing: set[str] = set()
            for service, entry in totals.items():
                if rule.services and service not in rule.services:
                    continue
                value = httprules.evaluate(rule, entry)
                if value is None or value <= (rule.threshold or 0.0):
                    continue
                group = f"http:{service}"[:64]
                firing.add(group)
                if self.silences.silenced(rule.name, group, service, {}, now):
                    continue
                item = http_item(rule, service=service, value=value, requests=entry.requests, now=now,
                                 site=self.config.site)
                self._fire(rule, group, now, functools.partial(_with_suppressed, item))
            self._resolve_quiet(rule, firing, now)

    def _resolve_quiet(self, rule: AlertRule, firing: set[str], now: float) -> None:
        with self.engine.connect() as conn:
            groups = conn.execute(select(alert_state.c.group_key).where(
                alert_state.c.rule == rule.name, alert_state.c.firing.is_(True))).scalars().all()
        for group in groups:
            if group not in firing:
                self._resolve(group, rule.name, now)

    # --- cron monitors --------------------------------------------------------------------------------

    def evaluate_monitors(self, now: float) -> list[str]:
        """Claim and notify each missed, over-runtime and failed run, and each recovery, once across
        every process sharing the store (`kansoku.store.monitors`); returns what this process notified."""
        from kansoku.store import monitors as stored

        if self._monitors:
            with write_transaction(self.engine) as conn:
                for spec in self._monitors:
                    stored.upsert(self.engine, spec, now, conn)
            self._monitors = ()
        notified: list[str] = []
        for claim in (*stored.claim_missed(self.engine, now), *stored.claim_timeouts(self.engine, now),
                      *stored.claim_failures(self.engine, now), *stored.claim_recoveries(self.engine, now)):
            name = str(claim.monitor["name"])
            group = f"monitor:{name}"[:64]
            if claim.problem == "recovered":
                self._resolve(group, None, now)
            else:
                for rule in self._monitor_rules:
                    tags = {"monitor": name}
                    if any(tags.get(key) != value for key, value in rule.tags.items()):
                        continue  # a rule for other monitors (tags = {monitor = "..."})
                    if self.silences.silenced(rule.name, group, name, {"monitor": name}, now):
                        continue
                    item = monitor_item(rule, claim.problem, claim.monitor, claim.checkin, now=now,
                                        site=self.config.site)
                    self._fire(rule, group, now, functools.partial(_with_suppressed, item))
            notified.append(f"{claim.problem}:{name}")
        return notified

    def _start_resend_clocks(self, conn: Connection, rule: AlertRule, group: str, now: float) -> None:
        # The trigger itself was the first send: the first re-send is due one interval later.
        for name in self.config.channels_of(rule):
            if self.config.channels[name].type == "alertmanager":
                key = _resend_key(name, rule.name)
                self._ensure_state(conn, key, group)
                where = (alert_state.c.rule == key, alert_state.c.group_key == group)
                conn.execute(update(alert_state).where(*where).values(last_sent=now))

    def _resend_alertmanager(self, now: float) -> None:
        targets = [c for c in self.config.channels.values() if c.type == "alertmanager"]
        if not targets:
            return
        with self.engine.connect() as conn:
            query = select(alert_state.c.rule, alert_state.c.group_key, alert_state.c.last_outbox_id)
            states = conn.execute(query.where(alert_state.c.firing.is_(True))).all()
        for name, group, outbox_id in states:
            rule = self.rules.get(name)
            if rule is None or outbox_id is None:
                continue
            for channel in targets:
                if channel.name not in self.config.channels_of(rule):
                    continue
                resend = rule.model_copy(update={"suppression_minutes": channel.resend_seconds / 60})
                self._fire(resend, group, now, functools.partial(_stored_item, outbox_id),
                           state_rule=_resend_key(channel.name, rule.name), only=channel.name)


def _still_firing(conn: Connection, rule: str, group: str) -> bool:
    """Whether (rule, group) fires, read under the row's lock (a resolution takes it to write)."""
    query = select(alert_state.c.firing).where(alert_state.c.rule == rule, alert_state.c.group_key == group)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return bool(conn.execute(query).scalar())


def _resend_key(channel: str, rule: str) -> str:
    return f"~resend:{channel}:{rule}"[:128]


def _with_suppressed(item: AlertItem, suppressed: int, conn: Connection) -> AlertItem:
    return {**item, "suppressed": suppressed}


def _stored_item(outbox_id: int, suppressed: int, conn: Connection) -> AlertItem:
    payload = conn.execute(select(outbox.c.payload).where(outbox.c.id == outbox_id)).scalar_one()
    item: AlertItem = payload["item"]
    return item


def _matches(rule: AlertRule, event: ErrorEvent) -> bool:
    """The chapter's severity threshold and category filter, plus service, environment and tags."""
    if severity_rank(event.get("severity", "low")) < severity_rank(rule.severity_threshold):
        return False
    if rule.categories and event.get("category", "application") not in rule.categories:
        return False
    if rule.services and event.get("service") not in rule.services:
        return False
    if rule.environments and event.get("environment") not in rule.environments:
        return False
    tags = event.get("tags", {})
    return all(tags.get(key) == value for key, value in rule.tags.items())
