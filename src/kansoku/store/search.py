"""Log search: a parsed query (`store.query_syntax`) compiled to SQL for SQLite and PostgreSQL, and run.

`search_logs(engine, "level>=warning order_id=1234", limit=50)` returns the newest matching lines
first, with `next_before` (the id to page on from) and, for a live tail, `after` returns only lines
newer than an id. How each term is answered:

- `level` compares the level number (`level>=warning`); `message=...` is free text.
- Any other `field=value` (columns and attributes alike) is a field token in the index
  (`store.logs.field_token`); negated, the row must not have it.
- `>`, `>=`, `<`, `<=` on another field compare the attribute as a number (durations in ms:
  `duration>500ms` reads `duration_ms`); rows where it is not a number do not match.
- Words and phrases match the message: on PostgreSQL through the tsvector; on SQLite the FTS5
  blocks give the candidates, newest first, and a regular expression checks each row.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

from sqlalchemy import Engine, Float, and_, bindparam, case, cast, false, func, not_, or_, select, text, true
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql.elements import ColumnElement

from kansoku.store.logs import FTS_TABLE, WORD, field_token, scalar_text
from kansoku.store.query_syntax import LEVELS, FieldTerm, Query, QuerySyntaxError, TextTerm, parse, parse_duration_ms
from kansoku.store.tables import logs

__all__ = ["LEVEL_NAMES", "MAX_LIMIT", "LogSearch", "compile_logs", "line", "search_logs"]

MAX_LIMIT: Final = 1000
LEVEL_NAMES: Final = {5: "trace", 10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}
_C = logs.c
_COLUMNS: Final = (_C.id, _C.timestamp, _C.level, _C.logger, _C.message, _C.service, _C.environment, _C.version,
                   _C.request_id, _C.trace_id, _C.span_id, _C.project, _C.attributes)
_NUMBER: Final = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_BLOCKS_PER_STEP: Final = 64
_DURATION_FIELDS: Final = {"duration": "duration_ms", "duration_ms": "duration_ms"}


def level_name(level: int) -> str:
    """The name of a level number (the highest named level at or under it)."""
    for number in sorted(LEVEL_NAMES, reverse=True):
        if level >= number:
            return LEVEL_NAMES[number]
    return "trace"


def line(row: Any) -> dict[str, Any]:
    """A stored line as JSON-ready data (the API's, the CLI's and the page's shape)."""
    data = dict(row._mapping)
    data["time"] = datetime.datetime.fromtimestamp(data["timestamp"], datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    data["level"] = level_name(int(data["level"]))
    return data


class LogSearch:
    """A query compiled for one dialect: row conditions, and (SQLite) the FTS5 expression of its blocks."""

    def __init__(self, query: Query, dialect: str) -> None:
        self.query = query
        self.postgres = dialect == "postgresql"
        self.conditions: list[ColumnElement[bool]] = []
        self.match: list[str] = []  # SQLite: FTS5 terms every candidate block must have
        for term in query.terms:
            if isinstance(term, TextTerm):
                self._text(term)
            else:
                self._field(term)
        if query.since is not None:
            self.conditions.append(_C.timestamp >= query.since)
        if query.until is not None:
            self.conditions.append(_C.timestamp <= query.until)

    # --- terms ----------------------------------------------------------------------------------

    def _text(self, term: TextTerm) -> None:
        words = WORD.findall(term.text)
        condition: ColumnElement[bool]
        if self.postgres:
            condition = _C.search.bool_op("@@")(_tsquery(words, term.phrase or len(words) > 1, term.prefix))
        else:
            condition = _C.message.regexp_match(_word_pattern(words, term.prefix))
            if not term.negated:
                self.match.extend(f'"{w}"*' if term.prefix and n == len(words) - 1 else f'"{w}"'
                                  for n, w in enumerate(words))
        self.conditions.append(not_(condition) if term.negated else condition)

    def _field(self, term: FieldTerm) -> None:
        name = term.name
        if name.lower() == "level":
            condition = _compare(_C.level, term.op, _level(term, self.query.text))
        elif name.lower() in ("message", "msg", "event"):
            if term.op != "=":
                raise QuerySyntaxError(f"{name} is text: use {name}=\"words\"", self.query.text, term.start, term.end)
            self._text(TextTerm(term.value, negated=term.negated, phrase=True))
            return
        elif term.op == "=":
            condition = self._equal(term)
        else:
            condition = self._number(term)
        self.conditions.append(not_(condition) if term.negated else condition)

    def _equal(self, term: FieldTerm) -> ColumnElement[bool]:
        tokens = _tokens(term.name, term.value)
        if self.postgres:
            return _C.search.bool_op("@@")(cast(" | ".join(tokens), TSQUERY))
        if not term.negated:
            quoted = [f'"{t}"' for t in tokens]
            self.match.append(quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")")
        return or_(*(func.instr(_C.search, f" {t} ") > 0 for t in tokens))

    def _number(self, term: FieldTerm) -> ColumnElement[bool]:
        name = _DURATION_FIELDS.get(term.name.lower(), term.name)
        number = parse_duration_ms(term.value) if name == "duration_ms" else _as_number(term.value)
        if number is None:
            raise QuerySyntaxError(f"{term.name}{term.op} needs a number" + (" or a duration like 500ms"
                                   if name == "duration_ms" else ""), self.query.text, term.start, term.end)
        return _compare(self._attribute_number(name), term.op, number)

    def _attribute_number(self, name: str) -> ColumnElement[Any]:
        parts = name.split(".")
        if self.postgres:
            value = func.jsonb_extract_path(_C.attributes, *parts)
            return case((func.jsonb_typeof(value) == "number",
                         cast(func.jsonb_extract_path_text(_C.attributes, *parts), Float)), else_=None)
        path = "$" + "".join(f'."{p}"' for p in parts)
        return case((func.json_type(_C.attributes, path).in_(("integer", "real")),
                     func.json_extract(_C.attributes, path)), else_=None)

    # --- running ----------------------------------------------------------------------------------

    def rows(self, conn: Any, *, limit: int, before: int | None, after: int | None) -> list[Any]:
        """Up to `limit` matching rows, newest first, with id < before and id > after."""
        bounds = list(self.conditions)
        if before is not None:
            bounds.append(_C.id < before)
        if after is not None:
            bounds.append(_C.id > after)
        bounds.extend(self._id_bounds(conn))
        statement = select(*_COLUMNS).order_by(_C.id.desc())
        if not self.match:
            return list(conn.execute(statement.where(and_(true(), *bounds)).limit(limit)))
        # One query per candidate block, newest first: a block is a rowid range, so each is a short
        # range scan (an OR of many ranges would let SQLite scan the whole table when few rows match).
        per_block = statement.where(_C.id.between(bindparam("first"), bindparam("last")), *bounds) \
            .limit(bindparam("left"))
        out: list[Any] = []
        for ranges in self._blocks(conn, before, after):
            for first, last in ranges:
                out.extend(conn.execute(per_block, {"first": first, "last": last, "left": limit - len(out)}))
                if len(out) >= limit:
                    return out
        return out

    def _id_bounds(self, conn: Any) -> list[ColumnElement[bool]]:
        """The time range as id bounds too (exact: the lowest id of a line at or after `since`...),
        so that a scan newest first stops where the range does."""
        out: list[ColumnElement[bool]] = []
        if self.query.since is not None:
            low = conn.execute(select(func.min(_C.id)).where(_C.timestamp >= self.query.since)).scalar()
            out.append(_C.id >= low if low is not None else false())
        if self.query.until is not None:
            high = conn.execute(select(func.max(_C.id)).where(_C.timestamp <= self.query.until)).scalar()
            out.append(_C.id <= high if high is not None else false())
        return out

    def _blocks(self, conn: Any, before: int | None, after: int | None) -> Iterator[list[tuple[int, int]]]:
        """SQLite: the id ranges of the candidate blocks, newest first, a step at a time."""
        sql = f"SELECT rowid, last_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match"  # noqa: S608 - own name
        params: dict[str, Any] = {"match": " AND ".join(self.match)}
        if before is not None:
            sql += " AND rowid < :before"
            params["before"] = before
        if after is not None:
            sql += " AND last_id > :after"
            params["after"] = after
        result = conn.execute(text(sql + " ORDER BY rowid DESC"), params)
        while True:
            step = result.fetchmany(_BLOCKS_PER_STEP)
            if not step:
                return
            yield [(int(first), int(last)) for first, last in step]


def _tsquery(words: Sequence[str], phrase: bool, prefix: bool) -> Any:
    parts = [w.lower() for w in words]
    if prefix:
        parts[-1] += ":*"
    return func.to_tsquery("simple", (" <-> " if phrase else " & ").join(parts))


def _word_pattern(words: Sequence[str], prefix: bool) -> str:
    # Words as SQLite's unicode61 tokenizer cuts them: runs of letters and digits, any case. (The
    # flag is in the pattern: SQLAlchemy's SQLite REGEXP takes no flags argument.)
    body = r"[\W_]+".join(re.escape(w) for w in words)
    return rf"(?i)(?<![^\W_]){body}" + ("" if prefix else r"(?![^\W_])")


def _tokens(name: str, value: str) -> list[str]:
    """The tokens `name=value` may be stored as (a number also in its normal form: 12.50 is 12.5)."""
    texts = [value]
    if _NUMBER.fullmatch(value):
        number = float(value)
        normal = scalar_text(int(number) if number.is_integer() and abs(number) < 1e15 else number)
        if normal is not None and normal != value:
            texts.append(normal)
    return list(dict.fromkeys(field_token(name, t) for t in texts))


def _as_number(value: str) -> float | None:
    return float(value) if _NUMBER.fullmatch(value) else None


def _level(term: FieldTerm, query: str) -> int:
    value = term.value.lower()
    if value.isdigit():
        return int(value)
    if value not in LEVELS:
        raise QuerySyntaxError(f"unknown level {term.value!r}: trace, debug, info, warning, error or critical",
                               query, term.start, term.end)
    return LEVELS[value]


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    comparisons: dict[str, Any] = {"=": column == value, ">": column > value, ">=": column >= value,
                                   "<": column < value, "<=": column <= value}
    return comparisons[op]  # type: ignore[no-any-return]


def compile_logs(query: str | Query, dialect: str) -> LogSearch:
    """A query (text or parsed) compiled for `dialect`; QuerySyntaxError (a ValueError) if it is bad."""
    return LogSearch(parse(query) if isinstance(query, str) else query, dialect)


def search_logs(
    engine: Engine,
    query: str | Query = "",
    *,
    limit: int = 50,
    before: int | None = None,
    after: int | None = None,
) -> dict[str, Any]:
    """Matching lines newest first: `{"lines": [...], "next_before": id or None, "query": text}`.

    `before`: lines older than this id (the next page); `after`: only lines newer (a live tail).
    Raises QuerySyntaxError (a ValueError) for a bad query, ValueError for a bad limit.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    search = compile_logs(query, engine.dialect.name)
    with engine.connect() as conn:
        rows = search.rows(conn, limit=limit, before=before, after=after)
    lines = [line(row) for row in rows]
    next_before = lines[-1]["id"] if len(lines) == limit else None
    return {"query": search.query.text, "lines": lines, "next_before": next_before}
