"""Stores made by earlier versions of abr are migrated on open and their jobs carry on.

`tests/fixtures/store-0005.sqlite3` was written by abr before migration 0006: a job of 25
requests (`old_0` … `old_24`), ingested in chunks of 10, nothing sent yet. Its job row
names the placeholders OUTPUT_DIR and INPUT_PATH, which each test points at its own
folder."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.store import Store, bodies
from anthropic_batch_request_util.store.schema import chunks

from .helpers import read_results, run_abr, summary

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store-0005.sqlite3"
JOB_ID = "old-7ab41ee89d"


def _old_store(tmp_path: Path) -> Path:
    base = tmp_path / "output"
    base.mkdir()
    path = base / "abr.sqlite3"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE jobs SET output_dir = ?, input_path = ?", (str(base), "old.json"))
    return path


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_an_old_store_is_migrated_and_its_job_finishes(emulator: Emulator, tmp_path: Path) -> None:
    # Given a store written before the dead columns were dropped
    path = _old_store(tmp_path)
    assert {"body", "output"} <= _columns(path, "requests")

    # When its job is resumed
    completed = run_abr("resume", JOB_ID, "--json", emulator=emulator)

    # Then the store is migrated and every request is answered once, in input order
    assert completed.returncode == 0, completed.stderr
    assert not {"body", "output"} & _columns(path, "requests")
    assert "fingerprint" not in _columns(path, "chunks")
    result = summary(completed)
    assert result["counts"]["succeeded"] == 25
    lines = read_results(Path(result["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"old_{i}" for i in range(25)]
    assert set(emulator.stats(submissions=True)["submissions"].values()) == {1}


def test_a_store_with_bodies_in_request_rows_is_migrated(tmp_path: Path) -> None:
    # Given a store as it was before segments: bodies in the request rows, no bodies table
    path = _old_store(tmp_path)
    store = Store(f"sqlite:///{path}")
    with store.begin() as conn:
        ids = conn.execute(sa.select(chunks.c.id, chunks.c.request_count)).all()
        before = {cid: bodies.chunk_body(conn, cid, n) for cid, n in ids}
        stored = dict(bodies.iter_bodies(conn, 1, range(25)))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE bodies")
        conn.execute("DROP TABLE result_lines")
        conn.execute("ALTER TABLE requests ADD COLUMN body BLOB NOT NULL DEFAULT x''")
        conn.execute("ALTER TABLE requests ADD COLUMN output BLOB")
        conn.execute("ALTER TABLE chunks ADD COLUMN fingerprint VARCHAR(64) NOT NULL DEFAULT ''")
        conn.execute("DELETE FROM schema_migrations WHERE name >= '0005'")
        conn.executemany(
            "UPDATE requests SET body = ? WHERE idx = ?", [(b, i) for i, b in stored.items()]
        )

    # When it is opened again
    store = Store(f"sqlite:///{path}")

    # Then every chunk sends the same bytes, and the rows no longer hold bodies
    with store.begin() as conn:
        assert {cid: bodies.chunk_body(conn, cid, n) for cid, n in ids} == before
    store.close()
    assert "body" not in _columns(path, "requests")


def test_a_store_from_a_newer_abr_is_refused_with_one_line(tmp_path: Path) -> None:
    path = _old_store(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 0)")

    completed = run_abr("jobs")

    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1, completed.stderr
    assert "newer abr" in completed.stderr and "Traceback" not in completed.stderr
