"""The log store's writes: records (plain dicts) to `kansoku_logs` rows with their search index.

`write_logs(engine, records)` is the one way in, for kansoku's own log lines (through the keeper's
writer thread) and for ingested ones (OTLP logs): a list of `LogRecord` dicts, already redacted,
written in one transaction. Missing fields get defaults; a level may be a name or a number.

The index. Free text searches the message's words; `field=value` works on every field through
*field tokens*: each scalar field (nested ones by dotted name, list items one by one) becomes the
token made of letters and digits (`field_token`), so one full-text index answers both kinds of
query and any field is found without scanning. A row's `search` column holds its tokens.
Values longer than 256 characters make no token.

PostgreSQL: `search` is a tsvector of the message's words (`simple` configuration: lower-cased, no
stemming) and the tokens, under a GIN index; a query is exact on the index.

SQLite: FTS5 costs about 15 µs a row, which alone would keep the writer under 50,000 lines a
second. So each batch is cut into blocks of up to 64 consecutive rows and FTS5 indexes one document
per block (its messages and the union of its rows' tokens in one column: a service name is indexed
once per block, not once per line), with the block's last id beside it. A query asks FTS5 for the blocks, newest
first, and checks each candidate row exactly: tokens by `instr(search, token)`, words by a regular
expression on the message. Ids are given by the writer (inside BEGIN IMMEDIATE, so processes never
collide), which keeps a block's rows consecutive.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypedDict

from sqlalchemy import Engine, delete, func, select, text

from kansoku.store._engine import _json_dumps, write_transaction
from kansoku.store.tables import logs

__all__ = ["BLOCK_ROWS", "FTS_DDL", "FTS_TABLE", "LEVEL_NUMBERS", "WORD", "LogRecord", "Tokens", "field_token",
           "level_number", "log_row", "prune_logs", "scalar_text", "token_texts", "write_logs"]

LEVEL_NUMBERS: Final = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40,
                        "exception": 40, "critical": 50, "fatal": 50}
MAX_TOKEN_VALUE: Final = 256
MAX_TOKENS: Final = 64  # per record: a record with a thousand fields indexes its first 64
MAX_DEPTH: Final = 3
MAX_LIST_ITEMS: Final = 16
_LIMITS: Final = {"logger": 256, "service": 128, "environment": 64, "version": 128, "request_id": 128,
                  "trace_id": 32, "span_id": 16, "project": 128}
BLOCK_ROWS: Final = 64
WORD: Final = re.compile(r"[^\W_]+")  # a word as SQLite's unicode61 tokenizer cuts them: letters and digits
FTS_TABLE: Final = "kansoku_logs_fts"  # SQLite only
FTS_DDL: Final = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(body, last_id UNINDEXED, "
                  "columnsize=0, detail=none, tokenize='unicode61 remove_diacritics 0')")
"""The SQLite search index as migration 0005 makes it, for stores made from `tables.metadata` (tests)."""


class LogRecord(TypedDict, total=False):
    """One log record to store. Only `timestamp` and `message` are needed; fields not given are empty."""

    timestamp: float  # seconds since the epoch
    level: int | str  # a number (20) or a name ("info")
    logger: str
    message: str
    service: str
    environment: str
    version: str | None
    request_id: str | None
    trace_id: str | None  # 32 hex digits
    span_id: str | None  # 16 hex digits
    project: str | None  # the kansoku server project it was ingested into; None: the app's own
    attributes: dict[str, Any]  # every other field, JSON-ready


def level_number(level: int | str | None) -> int:
    """A level as a number: names as kansoku's (and OTel's severity text), numbers kept; unknown: info."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str):
        found = LEVEL_NUMBERS.get(level.lower())
        if found is not None:
            return found
        if level.isdigit():
            return int(level)
    return 20


def scalar_text(value: Any) -> str | None:
    """The text a field value is indexed and compared as, or None (not a scalar, or too long).

    The same number written 1234, 1234.0 or "1234" reads the same; booleans and null as JSON spells them.
    """
    if isinstance(value, str):
        return value if len(value) <= MAX_TOKEN_VALUE else None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return None


_KEY_CODES: dict[str, str] = {}


def _key_code(key: str) -> str:
    code = _KEY_CODES.get(key)
    if code is None:
        if len(_KEY_CODES) >= 65_536:
            _KEY_CODES.clear()
        code = _KEY_CODES[key] = hashlib.blake2b(key.lower().encode("utf-8", "surrogatepass"),
                                                 digest_size=4).hexdigest()
    return code


def field_token(key: str, value_text: str) -> str:
    """The index token of `key=value_text` (case-insensitive), letters and digits only.

    A short value of ASCII letters and digits (ids, numbers, names) is spelled out after a code of
    the key: `k` + 8 hex digits + the value, no hashing per row. Any other: `h` + 16 hex digits of
    blake2b("key=value").
    """
    if len(value_text) <= 64 and value_text.isascii() and value_text.isalnum():
        return f"k{_key_code(key)}{value_text.lower()}"
    data = f"{key}={value_text}".lower().encode("utf-8", "surrogatepass")
    return "h" + hashlib.blake2b(data, digest_size=8).hexdigest()


def token_texts(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (key, value text) pairs a record is indexed by, at most MAX_TOKENS."""
    out: list[tuple[str, str]] = []
    for key, value in fields.items():
        cls = value.__class__
        if cls is str:  # the common cases first, without a call
            if len(value) <= MAX_TOKEN_VALUE:
                out.append((key, value))
        elif cls is int:
            out.append((key, str(value)))
        else:
            _flatten(str(key), value, 1, out)
    return out[:MAX_TOKENS]


def _flatten(key: str, value: Any, depth: int, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        if depth < MAX_DEPTH:
            for name, item in value.items():
                _flatten(f"{key}.{name}", item, depth + 1, out)
        return
    items = value[:MAX_LIST_ITEMS] if isinstance(value, list | tuple) else (value,)
    for item in items:
        found = scalar_text(item)
        if found is not None:
            out.append((key, found))


class Tokens:
    """`search` text of records: the field tokens, with a bounded cache per key for the values that
    repeat (service, logger, category, status...)."""

    def __init__(self, cache_size: int = 2048) -> None:
        self._cache: dict[str, dict[str, str]] = {}
        self._size = cache_size

    def __call__(self, fields: Mapping[str, Any]) -> str:
        """The space-separated tokens of `fields`, with a space at both ends."""
        cache = self._cache
        out: list[str] = []
        for key, value in fields.items():
            cls = value.__class__
            if cls is str:  # the common cases inline: this runs for every field of every line
                if len(value) > MAX_TOKEN_VALUE:
                    continue
                text = value
            elif cls is int:
                text = str(value)
            else:
                pairs: list[tuple[str, str]] = []
                _flatten(str(key), value, 1, pairs)
                out.extend(field_token(k, t) for k, t in pairs)
                continue
            known = cache.get(key)
            if known is None:
                if len(cache) >= self._size:
                    cache.clear()
                known = cache[key] = {}
            token = known.get(text)
            if token is None:
                if len(known) >= self._size:  # ids: every value new, the cache only costs
                    known.clear()
                token = known[text] = field_token(key, text)
            out.append(token)
        if len(out) > MAX_TOKENS:
            out = out[:MAX_TOKENS]
        # Spaces at both ends: `instr(search, " token ")` then finds whole tokens only.
        return " " + " ".join(dict.fromkeys(out)) + " " if out else ""


_TOKENS = Tokens()


def log_row(record: Mapping[str, Any], tokens: Tokens = _TOKENS) -> dict[str, Any]:
    """The `kansoku_logs` row of a record (without `id`); `search` holds the field tokens."""
    attributes = record.get("attributes") or {}
    row: dict[str, Any] = {
        "timestamp": float(record.get("timestamp") or 0.0),
        "level": level_number(record.get("level")),
        "message": str(record.get("message") or ""),
    }
    for name, limit in _LIMITS.items():
        value = record.get(name)
        row[name] = None if value is None else str(value)[:limit]
    for name in ("logger", "service", "environment"):
        if row[name] is None:
            row[name] = ""
    row["attributes"] = dict(attributes)
    indexed = {name: row[name] for name in _LIMITS if row[name]}
    indexed.update(attributes)
    row["search"] = tokens(indexed)
    return row


_COLUMNS: Final = ("timestamp", "level", "logger", "message", "service", "environment", "version", "request_id",
                   "trace_id", "span_id", "attributes", "search", "project")


def write_logs(engine: Engine, records: Iterable[Mapping[str, Any]]) -> int:
    """Store `records` (redacted already) in one transaction; how many. Raises on a store error."""
    rows = [log_row(record) for record in records]
    if not rows:
        return 0
    with write_transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            _insert_postgres(conn, rows)
        else:
            _insert_sqlite(conn, rows)
    return len(rows)


def _insert_sqlite(conn: Any, rows: Sequence[dict[str, Any]]) -> None:
    # The driver's executemany (a loop in C) with the JSON made by orjson: several times faster than
    # SQLAlchemy's bind processing per row. BEGIN IMMEDIATE holds the write lock, so the next ids are
    # this transaction's; past the blocks too, so that no block ever covers a reused id.
    cursor = conn.connection.driver_connection.cursor()
    try:
        last_row = cursor.execute(f"SELECT max(id) FROM {logs.name}").fetchone()[0] or 0  # noqa: S608
        last_block = cursor.execute(f"SELECT last_id FROM {FTS_TABLE} ORDER BY rowid DESC LIMIT 1").fetchone()  # noqa: S608
        first = max(last_row, last_block[0] if last_block else 0) + 1
        values = [(first + n, r["timestamp"], r["level"], r["logger"], r["message"], r["service"],
                   r["environment"], r["version"], r["request_id"], r["trace_id"], r["span_id"],
                   _json_dumps(r["attributes"]), r["search"], r["project"]) for n, r in enumerate(rows)]
        marks = ", ".join("?" * (len(_COLUMNS) + 1))
        cursor.executemany(f"INSERT INTO {logs.name} (id, {', '.join(_COLUMNS)}) VALUES ({marks})", values)  # noqa: S608
        blocks = []
        for start in range(0, len(rows), BLOCK_ROWS):
            block = rows[start:start + BLOCK_ROWS]
            tokens = dict.fromkeys(token for r in block for token in r["search"].split())
            body = "\n".join(r["message"] for r in block) + "\n" + " ".join(tokens)
            blocks.append((first + start, body, first + start + len(block) - 1))
        cursor.executemany(f"INSERT INTO {FTS_TABLE} (rowid, body, last_id) VALUES (?, ?, ?)", blocks)  # noqa: S608
    finally:
        cursor.close()


_PG_INSERT: Final = text(
    f"INSERT INTO {logs.name} ({', '.join(_COLUMNS)}) "  # noqa: S608 - own names, bound values
    "SELECT t, l, g, m, s, e, v, r, tr, sp, CAST(a AS JSONB), "
    "to_tsvector('simple', w) || CAST(k AS TSVECTOR), p "
    "FROM unnest(CAST(:t AS FLOAT8[]), CAST(:l AS SMALLINT[]), CAST(:g AS TEXT[]), CAST(:m AS TEXT[]), "
    "CAST(:s AS TEXT[]), CAST(:e AS TEXT[]), CAST(:v AS TEXT[]), CAST(:r AS TEXT[]), CAST(:tr AS TEXT[]), "
    "CAST(:sp AS TEXT[]), CAST(:a AS TEXT[]), CAST(:k AS TEXT[]), CAST(:w AS TEXT[]), CAST(:p AS TEXT[])) "
    "AS u(t, l, g, m, s, e, v, r, tr, sp, a, k, w, p)"
)


def _insert_postgres(conn: Any, rows: Sequence[dict[str, Any]]) -> None:
    # One INSERT .. SELECT FROM unnest(arrays): a round trip per batch, not per row; PostgreSQL makes
    # the tsvector. The text of a NUL byte cannot be stored by PostgreSQL: it is replaced.
    def clean(value: Any) -> Any:
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

    conn.execute(_PG_INSERT, {
        "t": [r["timestamp"] for r in rows], "l": [r["level"] for r in rows],
        "g": [clean(r["logger"]) for r in rows], "m": [clean(r["message"]) for r in rows],
        "s": [clean(r["service"]) for r in rows], "e": [clean(r["environment"]) for r in rows],
        "v": [clean(r["version"]) for r in rows], "r": [clean(r["request_id"]) for r in rows],
        "tr": [clean(r["trace_id"]) for r in rows], "sp": [clean(r["span_id"]) for r in rows],
        "a": [_json_dumps(r["attributes"]).replace("\\u0000", "\\ufffd") for r in rows],  # jsonb refuses NUL
        "k": [r["search"] for r in rows], "p": [clean(r["project"]) for r in rows],
        # The message's words cut as on SQLite (PostgreSQL's parser would read "order-5" as "order", "-5").
        "w": [" ".join(WORD.findall(r["message"])) for r in rows],
    })


def prune_logs(engine: Engine, cutoff: float, *, chunk: int = 5_000) -> int:
    """Delete log lines older than `cutoff` (epoch seconds), in chunks; how many.

    On SQLite the FTS blocks whose rows are all gone go too, but the newest (a block whose rows are
    gone costs a query only a look: each row is checked).
    """
    deleted = 0
    c = logs.c
    while True:
        with write_transaction(engine) as conn:
            ids = select(c.id).where(c.timestamp < cutoff).order_by(c.id).limit(chunk).scalar_subquery()
            n = int(conn.execute(delete(logs).where(c.id.in_(ids))).rowcount or 0)
            if engine.dialect.name != "postgresql":
                low = conn.execute(select(func.min(c.id))).scalar()
                # The newest block always stays: it remembers the last id given (never given again).
                conn.execute(text(f"DELETE FROM {FTS_TABLE} WHERE last_id < :low "  # noqa: S608 - own name
                                  f"AND rowid < (SELECT max(rowid) FROM {FTS_TABLE})"),
                             {"low": low if low is not None else 2**62})
        deleted += n
        if n < chunk:
            return deleted
