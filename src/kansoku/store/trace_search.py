"""Trace search: the query syntax (`store.query_syntax`) over stored traces, one row per trace root.

`search_traces(engine, "service=shop route:/orders/{id} status>=500 duration>500ms")` returns the
newest matching root spans (a trace as this service saw it). What each field means here:

- `service`, `name`, `kind`, `trace_id` are the root span's; `route` its `http.route`, `method`
  its `http.request.method`.
- `status>=500` (a number) is the HTTP status; `status=error` (a word) the span status
  (`unset`, `ok`, `error`); `error=true` is `status=error`.
- `duration>500ms` is the root's duration.
- Any other `field=value` (or comparison) is a span attribute of *any* span of the trace
  (`db.system=postgresql`, `user.id=42`), so a trace is found by what happened inside it.
- Words match the root span's name (`GET`, `orders`).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Engine, Float, String, and_, case, cast, exists, func, not_, select, true
from sqlalchemy.sql.elements import ColumnElement

from kansoku.store.logs import scalar_text
from kansoku.store.query_syntax import FieldTerm, Query, QuerySyntaxError, TextTerm, parse, parse_duration_ms
from kansoku.store.tables import spans

__all__ = ["LIST_COLUMNS", "MAX_LIMIT", "TraceSearch", "compile_traces", "get_trace", "search_traces", "trace_row",
           "traces_of_group"]

MAX_LIMIT: Final = 500
_S = spans.c
_ROOT_ATTRIBUTES: Final = {"route": "http.route", "method": "http.request.method"}
LIST_COLUMNS: Final = (_S.trace_id, _S.span_id, _S.name, _S.service, _S.kind, _S.start_time, _S.duration_ms, _S.status,
                   _S.attributes)


def trace_row(row: Any) -> dict[str, Any]:
    """A root span as a trace of the list: ids, name, service, start, duration, status, route, HTTP
    status and the request's path (what names a request that matched no route)."""
    data = dict(row._mapping)
    attributes = data.pop("attributes") or {}
    data["route"] = attributes.get("http.route")
    data["http_status"] = attributes.get("http.response.status_code")
    data["path"] = attributes.get("url.path")
    return data


class TraceSearch:
    """A query compiled to conditions on root spans (`self.conditions`), for one dialect."""

    def __init__(self, query: Query, dialect: str) -> None:
        self.query = query
        self.postgres = dialect == "postgresql"
        self.conditions: list[ColumnElement[bool]] = [_S.is_root == true()]
        for term in query.terms:
            condition = self._text(term) if isinstance(term, TextTerm) else self._field(term)
            self.conditions.append(not_(condition) if term.negated else condition)
        if query.since is not None:
            self.conditions.append(_S.start_time >= query.since)
        if query.until is not None:
            self.conditions.append(_S.start_time <= query.until)

    def _error(self, term: FieldTerm, reason: str) -> QuerySyntaxError:
        return QuerySyntaxError(reason, self.query.text, term.start, term.end)

    def _text(self, term: TextTerm) -> ColumnElement[bool]:
        pattern = term.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return func.lower(_S.name).like(f"%{pattern}%", escape="\\")

    def _field(self, term: FieldTerm) -> ColumnElement[bool]:
        name, op, value = term.name.lower(), term.op, term.value
        if name in ("service", "name", "kind", "trace_id"):
            if op != "=":
                raise self._error(term, f"{term.name} is compared with = only")
            column = getattr(_S, name)
            return func.lower(column) == value.lower()
        if name in ("duration", "duration_ms"):
            number = parse_duration_ms(value)
            if number is None:
                raise self._error(term, f"{term.name}{op} needs a duration like 500ms or 1.5s")
            return _compare(_S.duration_ms, op, number)
        if name == "error":
            if op != "=" or value.lower() not in ("true", "false"):
                raise self._error(term, "write error=true or error=false")
            return (_S.status == "ERROR") if value.lower() == "true" else (_S.status != "ERROR")
        if name == "status":
            if _number(value) is None:
                if op != "=" or value.upper() not in ("UNSET", "OK", "ERROR"):
                    raise self._error(term, "status is an HTTP status (status>=500) or unset, ok, error")
                return _S.status == value.upper()
            return self._attribute(_S.attributes, "http.response.status_code", op, value, term)
        if name in _ROOT_ATTRIBUTES:
            return self._attribute(_S.attributes, _ROOT_ATTRIBUTES[name], op, value, term)
        other = spans.alias("other")
        inside = self._attribute(other.c.attributes, term.name, op, value, term)
        return exists(select(1).select_from(other).where(other.c.trace_id == _S.trace_id, inside))

    def _attribute(self, column: Any, key: str, op: str, value: str, term: FieldTerm) -> ColumnElement[bool]:
        if op == "=":
            wanted = [value.lower()]
            number = _number(value)
            if number is not None:
                normal = scalar_text(int(number) if number.is_integer() and abs(number) < 1e15 else number)
                if normal is not None and normal != value:
                    wanted.append(normal)
            return func.lower(self._text_of(column, key)).in_(wanted)
        number = _number(value)
        if number is None:
            raise self._error(term, f"{term.name}{op} needs a number")
        return _compare(self._number_of(column, key), op, number)

    def _text_of(self, column: Any, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return func.json_extract_path_text(column, key)
        return cast(func.json_extract(column, _path(key)), String)

    def _number_of(self, column: Any, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return case((func.json_typeof(func.json_extract_path(column, key)) == "number",
                         cast(func.json_extract_path_text(column, key), Float)), else_=None)
        return case((func.json_type(column, _path(key)).in_(("integer", "real")),
                     func.json_extract(column, _path(key))), else_=None)


def _path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    comparisons: dict[str, Any] = {"=": column == value, ">": column > value, ">=": column >= value,
                                   "<": column < value, "<=": column <= value}
    return comparisons[op]  # type: ignore[no-any-return]


def compile_traces(query: str | Query, dialect: str) -> TraceSearch:
    """A query compiled for `dialect`; QuerySyntaxError (a ValueError) if it is bad."""
    return TraceSearch(parse(query) if isinstance(query, str) else query, dialect)


def search_traces(engine: Engine, query: str | Query = "", *, limit: int = 50,
                  before: float | None = None) -> dict[str, Any]:
    """Matching traces (root spans), newest first: `{"traces": [...], "next_before": start_time or None}`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    search = compile_traces(query, engine.dialect.name)
    conditions = list(search.conditions)
    if before is not None:
        conditions.append(_S.start_time < before)
    statement = select(*LIST_COLUMNS).where(and_(*conditions)).order_by(_S.start_time.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [trace_row(row) for row in conn.execute(statement)]
    return {"query": search.query.text, "traces": rows,
            "next_before": rows[-1]["start_time"] if len(rows) == limit else None}


def get_trace(engine: Engine, trace_id: str, *, limit: int = 2000) -> list[dict[str, Any]]:
    """Every stored span of one trace, in start order (empty when none is stored)."""
    statement = (select(spans).where(_S.trace_id == trace_id.lower())
                 .order_by(_S.start_time, _S.span_id).limit(limit))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement)]


def traces_of_group(engine: Engine, group_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest traces with an event of error group `group_id`: trace id, event time, and the root
    span's name and duration when the trace's spans are stored (None otherwise)."""
    from kansoku.store.tables import error_events

    e = error_events.c
    newest = func.max(e.timestamp).label("timestamp")
    events = (select(e.trace_id, newest).where(e.group_id == group_id, e.trace_id.is_not(None))
              .group_by(e.trace_id).order_by(newest.desc()).limit(limit))
    with engine.connect() as conn:
        found = [(row.trace_id, row.timestamp) for row in conn.execute(events)]
        roots = {row.trace_id: row for row in conn.execute(
            select(_S.trace_id, _S.name, _S.duration_ms, _S.status)
            .where(_S.trace_id.in_([trace_id for trace_id, _ in found]), _S.is_root == true()))} if found else {}
    return [{"trace_id": trace_id, "timestamp": timestamp,
             "name": roots[trace_id].name if trace_id in roots else None,
             "duration_ms": roots[trace_id].duration_ms if trace_id in roots else None}
            for trace_id, timestamp in found]
