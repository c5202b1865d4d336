"""Bulk SQL helpers: many rows per statement, straight on the driver.

Bulk writes of many thousands of rows spend most of their time in SQLAlchemy's per-row
compile and type handling otherwise. Statements are written with `?` placeholders and
turned into the driver's own paramstyle.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy.engine import Connection

__all__ = ["executemany", "first_row", "insert_rows", "stream_rows", "update_rows"]

# SQLite ≥ 3.33 (UPDATE … FROM) with its JSON functions: one statement for all rows
_SQLITE_JSON_ROWS = sqlite3.sqlite_version_info >= (3, 33, 0)


def _driver_sql(conn: Connection, sql: str) -> str:
    """`sql` written with `?` placeholders, in the driver's own paramstyle."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `sql` (`?` placeholders) once per row of plain tuples, on the driver, in the
    connection's transaction."""
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(_driver_sql(conn, sql), rows)
    finally:
        cursor.close()


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: dict[str, Any] | None = None,
) -> None:
    """INSERT `rows` (values of `columns`, numbers, strings or None) and, in every row, the
    `constants`. See `_json_rows` for how SQLite gets them."""
    if not rows:
        return
    fixed = constants or {}
    names = ", ".join([*columns, *fixed])
    if _json_rows(conn):
        picks = ", ".join(_json_values(len(columns)) + ["?"] * len(fixed))
        sql = f"INSERT INTO {table} ({names}) SELECT {picks} FROM json_each(?)"
        conn.exec_driver_sql(sql, (*fixed.values(), _json_text(rows)))
        return
    marks = ", ".join("?" * (len(columns) + len(fixed)))
    extra = tuple(fixed.values())
    executemany(
        conn, f"INSERT INTO {table} ({names}) VALUES ({marks})", [(*r, *extra) for r in rows]
    )


def update_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """UPDATE `table` SET `columns` for the row matching `keys`, once per row of (column
    values..., key values...). See `_json_rows` for how SQLite gets them."""
    if not rows:
        return
    if _json_rows(conn):
        values = _json_values(len(columns) + len(keys), "v.value")
        sets = ", ".join(f"{c} = {v}" for c, v in zip(columns, values[: len(columns)], strict=True))
        where = " AND ".join(
            f"{table}.{k} = {v}" for k, v in zip(keys, values[len(columns) :], strict=True)
        )
        sql = f"UPDATE {table} SET {sets} FROM json_each(?) AS v WHERE {where}"
        conn.exec_driver_sql(sql, (_json_text(rows),))
        return
    sets = ", ".join(f"{c} = ?" for c in columns)
    where = " AND ".join(f"{k} = ?" for k in keys)
    executemany(conn, f"UPDATE {table} SET {sets} WHERE {where}", rows)


def _json_rows(conn: Connection) -> bool:
    """Whether to send rows to SQLite as one JSON array in one statement. pysqlite's
    executemany gives up the GIL around each row and takes it back after: while another
    thread runs Python, each take-back waits up to the switch interval (5 ms). 10,000
    result rows took 0.1-0.5 s in a run (seconds beside a busy thread) instead of 30 ms,
    holding SQLite's one write lock all along; one statement takes the GIL back once."""
    return _SQLITE_JSON_ROWS and conn.dialect.name == "sqlite"


def _json_text(rows: Sequence[Sequence[Any]]) -> str:
    # text, not bytes: SQLite 3.45 and later read a BLOB argument as its binary JSONB
    return orjson.dumps(rows).decode()


def _json_values(n: int, source: str = "value") -> list[str]:
    return [f"json_extract({source}, '$[{i}]')" for i in range(n)]


def stream_rows(
    conn: Connection, sql: str, params: Sequence[Any] = (), batch: int = 5000
) -> Iterator[Sequence[Any]]:
    """The rows of a query (`?` placeholders) as plain tuples, `batch` at a time from the
    server (a server-side cursor on PostgreSQL), without SQLAlchemy's per-row work."""
    # per statement: Connection.execution_options would change the whole connection
    result = conn.exec_driver_sql(
        _driver_sql(conn, sql), tuple(params), execution_options={"yield_per": batch}
    )
    for part in result.partitions():
        yield from part


def first_row(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
    """The first row of a query (`?` placeholders) as a plain tuple, or None."""
    row = conn.exec_driver_sql(_driver_sql(conn, sql), tuple(params)).first()
    return None if row is None else tuple(row)
