"""Schema changes, append-only: a new change is a new function at the end, never an edit.

Each migration is frozen: it carries the DDL (and any data code) it needs and imports
nothing of the live schema or the live classes, so changing a table in schema.py tomorrow
cannot change what an old migration does to a store made today.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS"]


def _0001_initial(conn: Connection) -> None:
    m = sa.MetaData()
    sa.Table(
        "jobs",
        m,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), unique=True, nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("input_path", sa.Text, nullable=False),
        sa.Column("input_format", sa.String(20), nullable=False),
        sa.Column("settings_json", sa.LargeBinary, nullable=False),
        sa.Column("total_requests", sa.Integer, nullable=False, default=0),
        sa.Column("next_chunk_seq", sa.Integer, nullable=False, default=0),
        sa.Column("output_dir", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    sa.Table(
        "chunks",
        m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("body_bytes", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(100), nullable=True, unique=True),
        sa.Column("intent_at", sa.Float, nullable=True),
        sa.Column("submitted_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("fetched_at", sa.Float, nullable=True),
        sa.Column("processing_status", sa.String(20), nullable=True),
        sa.Column("counts_json", sa.LargeBinary, nullable=True),
        sa.Column("poll_interval", sa.Float, nullable=True),
        sa.Column("next_poll_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_token", sa.Integer, nullable=False, default=0),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("fetch_attempts", sa.Integer, nullable=False, default=0),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("job_pk", "seq"),
    )
    sa.Table(
        "requests",
        m,
        sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("custom_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("chunk_id", sa.Integer, nullable=True, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("error_type", sa.String(60), nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("cache_creation_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("output", sa.LargeBinary, nullable=True),
        sa.Index("ix_requests_job_custom_id", "job_pk", "custom_id"),
        sa.Index("ix_requests_job_status", "job_pk", "status"),
    )
    sa.Table(
        "attempts",
        m,
        sa.Column("chunk_id", sa.Integer, sa.ForeignKey("chunks.id"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error_type", sa.String(60), nullable=True),
    )
    sa.Table(
        "locks",
        m,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("token", sa.Integer, nullable=False, default=0),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    m.create_all(conn)


def _0002_request_cost(conn: Connection) -> None:
    columns = {column["name"] for column in sa.inspect(conn).get_columns("requests")}
    if "cost_usd" not in columns:
        conn.execute(sa.text("ALTER TABLE requests ADD COLUMN cost_usd FLOAT"))


def _0003_outputs(conn: Connection) -> None:
    m = sa.MetaData()
    sa.Table(
        "outputs",
        m,
        sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("output", sa.LargeBinary, nullable=False),
    )
    m.create_all(conn)
    conn.execute(
        sa.text(
            "INSERT INTO outputs (job_pk, idx, output)"
            " SELECT job_pk, idx, output FROM requests WHERE output IS NOT NULL"
        )
    )
    conn.execute(sa.text("UPDATE requests SET output = NULL WHERE output IS NOT NULL"))


def _0004_tally_index(conn: Connection) -> None:
    # Everything progress and summaries count or sum, so that they read this index alone
    # instead of every request row. idx comes third so that stored results, which arrive
    # in input order, append to the index. Nothing looks a request up by custom_id.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_requests_job_status"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_requests_job_custom_id"))
    conn.execute(
        sa.text(
            "CREATE INDEX ix_requests_tally ON requests (job_pk, status, idx, error_type,"
            " attempts, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,"
            " cost_usd)"
        )
    )


_0005_SEGMENT_BYTES = 1 << 20  # bytes of bodies per segment, as bodies.py had it then


def _0005_segments(conn: Connection) -> None:
    # Request bodies and results-file lines stored a chunk at a time. Lines already in
    # `outputs` stay there: they are read as before.
    m = sa.MetaData()
    sa.Table(
        "result_lines",
        m,
        sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("job_pk", sa.Integer, nullable=False),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("idxs", sa.LargeBinary, nullable=False),
        sa.Column("ends", sa.LargeBinary, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    bodies = sa.Table(
        "bodies",
        m,
        sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk_id", sa.Integer, nullable=False, index=True),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("ends", sa.LargeBinary, nullable=False),
    )
    m.create_all(conn)
    rows = conn.execute(
        sa.text(
            "SELECT job_pk, idx, chunk_id, body FROM requests WHERE length(body) > 0"
            " ORDER BY job_pk, idx"
        )
    )
    run: list[tuple[int, int, int, bytes]] = []
    size = 0
    for job_pk, idx, chunk_id, body in rows:
        key = (int(job_pk), -1 if chunk_id is None else int(chunk_id))
        if run and ((run[0][0], run[0][2]) != key or size > _0005_SEGMENT_BYTES):
            _0005_write(conn, bodies, run)
            run, size = [], 0
        run.append((key[0], int(idx), key[1], bytes(body)))
        size += len(body) + 1
    if run:
        _0005_write(conn, bodies, run)
    conn.execute(
        sa.text("UPDATE requests SET body = :empty WHERE length(body) > 0"), {"empty": b""}
    )


def _0005_write(conn: Connection, bodies: sa.Table, run: list[tuple[int, int, int, bytes]]) -> None:
    """One segment: the bodies joined by commas and each one's end offset (uint32, LE)."""
    ends = array("I")
    end = -1
    for *_, body in run:
        end += 1 + len(body)
        ends.append(end)
    if array("I", [1]).tobytes()[0] != 1:
        ends.byteswap()
    conn.execute(
        bodies.insert().values(
            job_pk=run[0][0],
            first_idx=run[0][1],
            chunk_id=run[0][2],
            request_count=len(run),
            data=b",".join(body for *_, body in run),
            ends=ends.tobytes(),
        )
    )


def _0006_drop_dead_columns(conn: Connection) -> None:
    # requests.body has been empty since 0005, requests.output unused since 0003, and
    # chunks.fingerprint was written but never read: a reconciled batch is confirmed by
    # the custom_ids of its results instead.
    for table, column in (("requests", "body"), ("requests", "output"), ("chunks", "fingerprint")):
        present = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        if column in present:
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))


def _0007_budget(conn: Connection) -> None:
    # the budget a job may spend, what holds its unsent requests back (a canary) and why it
    # stopped; each request's and each chunk's worst-case cost, summed by the budget check
    added = (
        ("jobs", "max_cost_usd", "FLOAT"),
        ("jobs", "hold_from_idx", "INTEGER"),
        ("jobs", "stop_reason", "VARCHAR(20)"),
        ("chunks", "worst_usd", "FLOAT"),
        ("requests", "worst_usd", "FLOAT"),
    )
    for table, column, kind in added:
        present = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        if column not in present:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))


def _0008_exports(conn: Connection) -> None:
    # every results file and record written for a job, wherever it went
    m = sa.MetaData()
    sa.Table(
        "exports",
        m,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_pk", sa.Integer, nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("written_at", sa.Float, nullable=False),
    )
    m.create_all(conn)


MIGRATIONS: tuple[tuple[str, Callable[[Connection], None]], ...] = (
    ("0001_initial", _0001_initial),
    ("0002_request_cost", _0002_request_cost),
    ("0003_outputs", _0003_outputs),
    ("0004_tally_index", _0004_tally_index),
    ("0005_segments", _0005_segments),
    ("0006_drop_dead_columns", _0006_drop_dead_columns),
    ("0007_budget", _0007_budget),
    ("0008_exports", _0008_exports),
)
