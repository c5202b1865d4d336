"""Bulk writes (store.insert_rows / update_rows) on a real SQLite store: rows sent as one
JSON array in one statement land exactly as row-by-row statements put them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from anthropic_batch_request_util.store import Store
from anthropic_batch_request_util.store import sql as store_module
from anthropic_batch_request_util.store.schema import requests
from anthropic_batch_request_util.store.sql import insert_rows, update_rows

ROWS = [
    (1, 0, "plain", 7),
    (1, 1, "ünïcødé \"quoted\" 'single' \\ back", 7),
    (1, 2, "emoji 🙂 and\nnewline", 8),
    (2, 0, "x" * 64, 9),
]
UPDATES = [
    ("succeeded", None, 12, 2**40, 0, 3, 0.000123456789, 1, 1, 0, 7),
    ("errored", "overloaded_error", 0, 0, 0, 0, None, 2, 1, 1, 7),
    ("retry", "api_error", 5, 6, 7, 8, 1e-12, 3, 1, 2, 999),  # wrong chunk: no change
]
NEW = {"status": "queued", "attempts": 0, "input_tokens": 0, "output_tokens": 0}
NEW |= {"cache_creation_tokens": 0, "cache_read_tokens": 0}
COLUMNS = (
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost_usd",
    "attempts",
)


def _written(tmp_path: Path, name: str) -> list[Any]:
    store = Store(f"sqlite:///{tmp_path / name}")
    with store.begin() as conn:
        insert_rows(
            conn,
            "requests",
            ("job_pk", "idx", "custom_id", "chunk_id"),
            ROWS,
            NEW,
        )
        update_rows(conn, "requests", COLUMNS, ("job_pk", "idx", "chunk_id"), UPDATES)
        update_rows(conn, "requests", COLUMNS, ("job_pk", "idx", "chunk_id"), [])
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(requests.c.job_pk, requests.c.idx, requests.c.custom_id, requests.c.chunk_id)
            .add_columns(*(requests.c[c] for c in COLUMNS))
            .order_by(requests.c.job_pk, requests.c.idx)
        ).all()
    store.close()
    return [tuple(row) for row in rows]


def test_rows_as_one_json_statement_match_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = _written(tmp_path, "json.sqlite3")
    monkeypatch.setattr(store_module, "_SQLITE_JSON_ROWS", False)
    one_by_one = _written(tmp_path, "rows.sqlite3")

    assert together == one_by_one
    assert [row[2] for row in together] == [row[2] for row in ROWS]
    assert together[0][4:] == ("succeeded", None, 12, 2**40, 0, 3, 0.000123456789, 1)
    assert together[1][4:6] == ("errored", "overloaded_error")
    assert together[2][4] == "queued", "a key that matches no row changes nothing"
    assert [row[3] for row in together] == [row[3] for row in ROWS]
