"""The log store's writes: rows and their search index on SQLite and PostgreSQL, retention."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from kansoku.store import Store
from kansoku.store.logs import BLOCK_ROWS, FTS_TABLE, field_token, log_row, prune_logs, scalar_text, write_logs
from kansoku.store.tables import logs

from .conftest import T0


def _record(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": T0 + n, "level": "info", "logger": "shop.orders", "message": f"order {n} created",
        "service": "shop", "environment": "test", "request_id": f"req{n}", "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}", "attributes": {"order_id": n, "category": "business"},
    }
    record.update(fields)
    return record


def _rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(logs).order_by(logs.c.id))]


def test_records_become_rows_with_every_field(store: Store) -> None:
    """A record is stored with its columns, its other fields as attributes, and the level as a number."""
    assert write_logs(store.engine, [_record(1, level="warning", version="1.2", attributes={"user": {"id": 7}})]) == 1
    (row,) = _rows(store)
    assert {k: row[k] for k in ("timestamp", "level", "logger", "message", "service", "environment", "version",
                                "request_id", "trace_id", "span_id", "attributes")} == {
        "timestamp": T0 + 1, "level": 30, "logger": "shop.orders", "message": "order 1 created", "service": "shop",
        "environment": "test", "version": "1.2", "request_id": "req1", "trace_id": f"{1:032x}",
        "span_id": f"{1:016x}", "attributes": {"user": {"id": 7}}}


def test_missing_fields_get_defaults_and_long_ones_are_cut(store: Store) -> None:
    """Only a message is needed; over-long column values are cut to the column's size, not refused."""
    write_logs(store.engine, [{"timestamp": T0, "message": "bare"}, _record(2, logger="x" * 999, trace_id="f" * 99)])
    bare, long = _rows(store)
    assert (bare["level"], bare["logger"], bare["service"], bare["attributes"], bare["trace_id"]) == (20, "", "", {},
                                                                                                       None)
    assert (len(long["logger"]), long["trace_id"]) == (256, "f" * 32)


def test_tokens_make_equal_values_meet() -> None:
    """1234, 1234.0 and "1234" index alike; case does not matter; long values and objects make no token."""
    assert {scalar_text(v) for v in (1234, 1234.0, "1234")} == {"1234"}
    assert (scalar_text(True), scalar_text(None), scalar_text(12.5)) == ("true", "null", "12.5")
    assert field_token("Order_ID", "ABC") == field_token("order_id", "abc")
    assert field_token("order_id", "1234") != field_token("user_id", "1234")
    assert field_token("path", "/orders/{id}").startswith("h") and field_token("path", "/orders/{id}").isalnum()
    assert scalar_text("x" * 300) is None and scalar_text(object()) is None
    row = log_row({"timestamp": T0, "message": "m", "attributes": {"user": {"id": 7}, "tags": ["a", "b"]}})
    assert set(row["search"].split()) == {field_token("user.id", "7"), field_token("tags", "a"),
                                          field_token("tags", "b")}


def test_the_search_index_finds_a_field_value(store: Store) -> None:
    """The backend's full-text index (FTS5 blocks, tsvector) answers a field token and a message word."""
    write_logs(store.engine, [_record(n) for n in range(1, 201)])
    token = field_token("order_id", "150")
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            found = conn.execute(text("SELECT message FROM kansoku_logs WHERE search @@ CAST(:t AS tsquery) "
                                      "AND search @@ to_tsquery('simple', 'created')"), {"t": token}).scalars().all()
        else:
            blocks = conn.execute(text(f"SELECT rowid, last_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q"),  # noqa: S608
                                  {"q": f'"{token}" AND "created"'}).all()
            assert len(blocks) == 1 and blocks[0][1] - blocks[0][0] < BLOCK_ROWS
            found = conn.execute(text("SELECT message FROM kansoku_logs WHERE id BETWEEN :a AND :b "
                                      "AND instr(search, :t) > 0"), {"a": blocks[0][0], "b": blocks[0][1],
                                                                     "t": f" {token} "}).scalars().all()
    assert found == ["order 150 created"]


def test_nul_and_odd_text_is_stored(store: Store) -> None:
    """Text PostgreSQL cannot hold (NUL) is replaced, not refused; any Unicode goes through."""
    write_logs(store.engine, [_record(1, message="a\x00b ünïcödé ✓", attributes={"raw": "x\x00y"})])
    (row,) = _rows(store)
    assert row["message"].startswith("a") and "ünïcödé ✓" in row["message"]


def test_prune_deletes_old_lines_and_their_blocks(store: Store) -> None:
    """prune_logs deletes lines older than the cutoff; SQLite's index blocks of deleted lines go too."""
    write_logs(store.engine, [_record(n) for n in range(1, 101)])
    write_logs(store.engine, [_record(n) for n in range(101, 131)])
    assert prune_logs(store.engine, T0 + 101, chunk=7) == 100
    assert [r["message"] for r in _rows(store)][:1] == ["order 101 created"] and len(_rows(store)) == 30
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.execute(text(f"SELECT min(rowid) FROM {FTS_TABLE}")).scalar() == 101  # noqa: S608
            assert conn.execute(select(func.count()).select_from(logs)).scalar() == 30


def test_ids_never_reused_after_everything_was_pruned(store: Store) -> None:
    """After all lines are pruned, new lines get new ids (no index block can cover a reused id)."""
    write_logs(store.engine, [_record(n) for n in range(1, 11)])
    prune_logs(store.engine, T0 + 1000)
    write_logs(store.engine, [_record(n) for n in range(11, 13)])
    assert [r["id"] for r in _rows(store)] == [11, 12]
