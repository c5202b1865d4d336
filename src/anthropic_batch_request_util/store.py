"""The job store: the single source of truth for every job, request, chunk and attempt.

SQLAlchemy Core over SQLite (default, WAL mode) or PostgreSQL. The broker only carries ids;
whatever should happen next can always be rebuilt from these tables.

Every state change is one guarded UPDATE (`... WHERE id = ? AND status = ?`, and for chunk
work also `AND lease_token = ?`), so two workers can never both win the same transition.
Schema changes are append-only migration functions recorded in `schema_migrations`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .errors import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "FINAL_REQUEST_STATUSES",
    "ChunkStatus",
    "HeldLock",
    "JobStatus",
    "RequestStatus",
    "Store",
    "executemany",
    "first_row",
    "held_lock",
    "insert_rows",
    "store_outputs",
    "stream_rows",
    "update_rows",
]

LEASE_S = 60.0  #: seconds a lease lasts unless renewed; a dead holder blocks no longer
RENEW_EVERY_S = LEASE_S / 4  #: seconds between renewals of a lease still in use
LOCK_S = LEASE_S  #: seconds a store-wide lock lasts unless renewed
SQLITE_BUSY_TIMEOUT_S = 60.0  #: seconds a SQLite writer waits for the lock
SQLITE_PAGE_BYTES = 16384  #: page size of a new SQLite store (fewer pages per blob)


class JobStatus(StrEnum):
    """Where a job stands as a whole."""

    INGESTING = "ingesting"  #: the input is being read; not visible to workers yet
    RUNNING = "running"  #: chunks are being submitted, polled and fetched
    CANCELING = "canceling"  #: the user asked to cancel; waiting for batches to end
    FINISHED = "finished"  #: every request has a final status; output files written
    FAILED = "failed"  #: stopped by an error that needs the user (e.g. a rejected key)


class ChunkStatus(StrEnum):
    """The life of one chunk: one Anthropic batch."""

    PENDING = "pending"  #: cut, not yet sent
    SUBMITTING = "submitting"  #: claimed, submit intent written, create may be in flight
    SUBMITTED = "submitted"  #: the batch id is known; polling
    ENDED = "ended"  #: the batch ended; results still to fetch
    DONE = "done"  #: results are in the store
    FAILED = "failed"  #: the API refused the batch for good; its requests are errored
    CANCELED = "canceled"  #: canceled before it was ever sent


class RequestStatus(StrEnum):
    """The status of one input request."""

    QUEUED = "queued"  #: in a chunk that has not finished
    RETRY = "retry"  #: failed retryably; waits for a new chunk
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


FINAL_REQUEST_STATUSES = (
    RequestStatus.SUCCEEDED,
    RequestStatus.ERRORED,
    RequestStatus.CANCELED,
    RequestStatus.EXPIRED,
)
#: job statuses in which workers move a job on (and finalize it)
ACTIVE_JOB_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELING)
ACTIVE_CHUNK_STATUSES = (
    ChunkStatus.PENDING,
    ChunkStatus.SUBMITTING,
    ChunkStatus.SUBMITTED,
    ChunkStatus.ENDED,
)

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), unique=True, nullable=True),  # set once ingested
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

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("round", sa.Integer, nullable=False),  # 1 = first submission, 2.. = retries
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

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("custom_id", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),  # empty since 0005: see `bodies`
    sa.Column("chunk_id", sa.Integer, nullable=True, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error_type", sa.String(60), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cache_creation_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("output", sa.LargeBinary, nullable=True),  # unused since 0003: see `outputs`
    sa.Column("cost_usd", sa.Float, nullable=True),  # what the last attempt cost
    sa.Index("ix_requests_job_custom_id", "job_pk", "custom_id"),  # dropped by 0004
    sa.Index("ix_requests_job_status", "job_pk", "status"),  # replaced by 0004
)

#: The results-file line of each answered request. Kept apart from `requests` so that
#: storing a result appends a row instead of growing (and so splitting) a request's page.
outputs = sa.Table(
    "outputs",
    metadata,
    sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("output", sa.LargeBinary, nullable=False),
)

#: Request bodies, a run of consecutive requests of one chunk per row (see bodies.py): the
#: bodies joined by commas as a create body holds them, and each one's end offset (uint32).
body_segments = sa.Table(
    "bodies",
    metadata,
    sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("chunk_id", sa.Integer, nullable=False, index=True),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("ends", sa.LargeBinary, nullable=False),
)

#: The results-file lines of a first-round chunk, sorted by input index (see
#: result_lines.py): their indexes (uint32), end offsets (uint32) and the lines themselves,
#: joined by newlines.
result_segments = sa.Table(
    "result_lines",
    metadata,
    sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("job_pk", sa.Integer, nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("idxs", sa.LargeBinary, nullable=False),
    sa.Column("ends", sa.LargeBinary, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("chunk_id", sa.Integer, sa.ForeignKey("chunks.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("error_type", sa.String(60), nullable=True),
)


locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("token", sa.Integer, nullable=False, default=0),
    sa.Column("expires_at", sa.Float, nullable=True),
)


def _migration_0001_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[jobs, chunks, requests, attempts, locks])


def _migration_0002_request_cost(conn: Connection) -> None:
    # stores made before this migration lack the column; new ones got it from 0001
    columns = {column["name"] for column in sa.inspect(conn).get_columns("requests")}
    if "cost_usd" not in columns:
        conn.execute(sa.text("ALTER TABLE requests ADD COLUMN cost_usd FLOAT"))


def _migration_0003_outputs(conn: Connection) -> None:
    outputs.create(conn)
    conn.execute(
        sa.text(
            "INSERT INTO outputs (job_pk, idx, output)"
            " SELECT job_pk, idx, output FROM requests WHERE output IS NOT NULL"
        )
    )
    conn.execute(sa.text("UPDATE requests SET output = NULL WHERE output IS NOT NULL"))


def _migration_0004_tally_index(conn: Connection) -> None:
    # Everything progress and summaries count or sum, so that they read this index alone
    # instead of every request row: a look at a million-request job stays cheap. idx comes
    # third so that stored results, which arrive in input order, append to the index.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_requests_job_status"))
    # Nothing looks a request up by custom_id (results are matched within their chunk);
    # the one JSONL check for duplicates can sort instead, and every ingest saves an index.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_requests_job_custom_id"))
    conn.execute(
        sa.text(
            "CREATE INDEX ix_requests_tally ON requests (job_pk, status, idx, error_type,"
            " attempts, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,"
            " cost_usd)"
        )
    )


def _migration_0005_segments(conn: Connection) -> None:
    # Request bodies and results-file lines stored a chunk at a time (bodies.py and
    # result_lines.py). Lines already in `outputs` stay there: they are read as before.
    from .bodies import SegmentWriter  # it builds on this module

    result_segments.create(conn)
    body_segments.create(conn)
    job_pks = conn.execute(
        sa.text("SELECT DISTINCT job_pk FROM requests WHERE length(body) > 0")
    ).scalars()
    for job_pk in list(job_pks):
        writer = SegmentWriter(conn, int(job_pk))
        sql = "SELECT idx, chunk_id, body FROM requests WHERE job_pk = ? ORDER BY idx"
        for idx, chunk_id, body in stream_rows(conn, sql, (job_pk,)):
            writer.add(int(idx), -1 if chunk_id is None else int(chunk_id), bytes(body))
        writer.flush()
    conn.execute(
        sa.text("UPDATE requests SET body = :empty WHERE length(body) > 0"), {"empty": b""}
    )


#: Append-only: a new schema change is a new function at the end, never an edit.
MIGRATIONS: tuple[tuple[str, Callable[[Connection], None]], ...] = (
    ("0001_initial", _migration_0001_initial),
    ("0002_request_cost", _migration_0002_request_cost),
    ("0003_outputs", _migration_0003_outputs),
    ("0004_tally_index", _migration_0004_tally_index),
    ("0005_segments", _migration_0005_segments),
)


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers (status, progress) run while a worker writes.
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # a new store only
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def create_sql_engine(url: str) -> Engine:
    """An SQLAlchemy engine for `url`, tuned for the job store's access pattern."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    """Open job store: the tables, migrations and the guarded state transitions."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = create_sql_engine(url)
            self.migrate()
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(f"cannot open the job store {safe_url(url)}: {error}") from error

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction."""
        with self.engine.begin() as conn:
            yield conn

    def migrate(self) -> None:
        """Apply the migrations this store has not seen yet, in order."""
        with self.engine.begin() as conn:
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.name)).scalars())
            for name, apply in MIGRATIONS:
                if name not in done:
                    apply(conn)
                    conn.execute(schema_migrations.insert().values(name=name, applied_at=now()))


@contextmanager
def heartbeat(renew: Callable[[], object], every_s: float = RENEW_EVERY_S) -> Iterator[None]:
    """Call `renew` every `every_s` seconds in the background while the block runs, so a
    long step (a big upload or download) keeps its lease and a dead one loses it soon."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                renew()
            except sa.exc.SQLAlchemyError:
                log.warning("could not renew a lease", exc_info=True)

    thread = threading.Thread(target=beat, name="abr-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def try_lock(
    store: Store,
    name: str,
    owner: str,
    ttl_s: float = LOCK_S,
    then: Callable[[Connection], object] | None = None,
) -> int | None:
    """Take the store-wide lock `name` if it is free or expired; returns its token. `then`
    runs in the same transaction once the lock is taken: one write instead of two."""
    t = now()
    with store.begin() as conn:
        exists = conn.execute(sa.select(locks.c.name).where(locks.c.name == name)).first()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(locks.insert().values(name=name, token=0))
            except sa.exc.IntegrityError:
                pass  # another process made the row first
        token = conn.execute(
            sa.update(locks)
            .where(
                locks.c.name == name,
                sa.or_(locks.c.expires_at.is_(None), locks.c.expires_at < t),
            )
            .values(owner=owner, token=locks.c.token + 1, expires_at=t + ttl_s)
            .returning(locks.c.token)
        ).scalar()
        if token is not None and then is not None:
            then(conn)
    return None if token is None else int(token)


@dataclass
class HeldLock:
    """A store-wide lock this block holds (see `held_lock`)."""

    store: Store
    name: str
    token: int
    released: bool = False

    def release_with(self, work: Callable[[Connection], T]) -> T:
        """Run `work` and give the lock back in one transaction: the lock is free exactly
        when what `work` wrote is in, with one write instead of two."""
        with self.store.begin() as conn:
            result = work(conn)
            _unlock(conn, self.name, self.token)
        self.released = True
        return result


def _unlock(conn: Connection, name: str, token: int) -> None:
    conn.execute(
        sa.update(locks)
        .where(locks.c.name == name, locks.c.token == token)
        .values(owner=None, expires_at=None)
    )


@contextmanager
def held_lock(
    store: Store,
    name: str,
    owner: str,
    ttl_s: float = LOCK_S,
    then: Callable[[Connection], object] | None = None,
) -> Iterator[HeldLock | None]:
    """A store-wide mutex for the block: yields the lock, or None when someone else holds
    it; released on exit unless the block gave it back already (`release_with`). `then`
    runs in the transaction that takes it."""
    token = try_lock(store, name, owner, ttl_s, then)
    held = None if token is None else HeldLock(store, name, token)

    def renew() -> None:
        with store.begin() as conn:
            conn.execute(
                sa.update(locks)
                .where(locks.c.name == name, locks.c.token == token)
                .values(expires_at=now() + ttl_s)
            )

    try:
        if held is None:
            yield None
        else:
            with heartbeat(renew):
                yield held
    finally:
        if held is not None and not held.released:
            with store.begin() as conn:
                _unlock(conn, name, held.token)


def _driver_sql(conn: Connection, sql: str) -> str:
    """`sql` written with `?` placeholders, in the driver's own paramstyle."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `sql` (`?` placeholders) once per row of plain tuples, straight on the driver, in
    the connection's transaction. Bulk writes of many thousands of rows spend most of their
    time in SQLAlchemy's per-row compile and type handling otherwise."""
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(_driver_sql(conn, sql), rows)
    finally:
        cursor.close()


# SQLite ≥ 3.33 (UPDATE … FROM) with its JSON functions: one statement for all rows
_SQLITE_JSON_ROWS = sqlite3.sqlite_version_info >= (3, 33, 0)


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


def store_outputs(conn: Connection, rows: Sequence[tuple[int, int, bytes]]) -> None:
    """Store or replace results-file lines: rows of (job_pk, idx, line)."""
    executemany(
        conn,
        "INSERT INTO outputs (job_pk, idx, output) VALUES (?, ?, ?)"
        " ON CONFLICT (job_pk, idx) DO UPDATE SET output = excluded.output",
        rows,
    )


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


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database url>"


def now() -> float:
    return time.time()


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
