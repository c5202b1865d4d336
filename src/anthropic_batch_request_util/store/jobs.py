"""Job rows: create, publish, find, move through their statuses; and what a job looks like
at one moment (its tally of requests, and the `Snapshot` every view renders)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from ..errors import JobNotFoundError
from . import chunks as chunk_rows
from .db import Connection, Store, now, row_dict
from .schema import (
    ACTIVE_CHUNK_STATUSES,
    ACTIVE_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    ChunkStatus,
    JobStatus,
    RequestStatus,
    attempts,
    chunks,
    jobs,
    requests,
)

__all__ = [
    "MIN_PREFIX",
    "BudgetFigures",
    "Job",
    "JobCounts",
    "Snapshot",
    "Tally",
    "Usage",
    "active_chunk_count",
    "active_job_pks",
    "add_job",
    "attempt_history",
    "budget_figures",
    "error_counts",
    "fail_job",
    "find_job",
    "get_job",
    "get_job_by_pk",
    "job_status",
    "job_tally",
    "latest_job",
    "list_jobs",
    "pause_job",
    "publish_job",
    "reopen_job",
    "set_budget",
    "set_hold",
    "set_status",
    "snapshot",
    "unfinished_count",
]


@dataclass(frozen=True, slots=True)
class Job:
    """A job row, read once."""

    pk: int
    id: str
    status: JobStatus
    input_path: str
    input_format: str
    settings: dict[str, Any]
    total_requests: int
    output_dir: str
    created_at: float
    updated_at: float
    finished_at: float | None
    error: str | None
    max_cost_usd: float | None = None  #: --max-cost; None: no budget
    hold_from_idx: int | None = None  #: requests from this index on wait (a canary)
    stop_reason: str | None = None  #: why it is paused ("budget", "canary")


@dataclass(slots=True)
class Usage:
    """Token usage summed over succeeded requests."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(slots=True)
class JobCounts:
    """How many requests of a job stand in each status."""

    by_status: dict[str, int] = field(default_factory=dict)

    def get(self, status: RequestStatus) -> int:
        return self.by_status.get(status.value, 0)

    @property
    def final(self) -> int:
        return sum(self.get(status) for status in FINAL_REQUEST_STATUSES)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def finals(self) -> dict[str, int]:
        return {status.value: self.get(status) for status in FINAL_REQUEST_STATUSES}


def _job_from_row(row: dict[str, Any]) -> Job:
    return Job(
        pk=row["pk"],
        id=row["id"] or "",
        status=JobStatus(row["status"]),
        input_path=row["input_path"],
        input_format=row["input_format"],
        settings=orjson.loads(row["settings_json"]),
        total_requests=row["total_requests"],
        output_dir=row["output_dir"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        max_cost_usd=row["max_cost_usd"],
        hold_from_idx=row["hold_from_idx"],
        stop_reason=row["stop_reason"],
    )


MIN_PREFIX = 6  #: characters a shortened job id needs


def get_job(conn: Connection, job_id: str) -> Job:
    """The job with public id `job_id`; a unique prefix of it is enough."""
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    if row is not None:
        return _job_from_row(row_dict(row))
    if len(job_id) < MIN_PREFIX:
        raise JobNotFoundError(job_id, f"(a shortened id needs {MIN_PREFIX} characters or more)")
    rows = conn.execute(sa.select(jobs).where(jobs.c.id.startswith(job_id)).limit(3)).all()
    if len(rows) > 1:
        names = ", ".join(str(r._mapping["id"]) for r in rows[:2])
        raise JobNotFoundError(job_id, f"(ambiguous: matches {names}…)")
    if not rows:
        raise JobNotFoundError(job_id)
    return _job_from_row(row_dict(rows[0]))


def get_job_by_pk(conn: Connection, job_pk: int) -> Job:
    row = conn.execute(sa.select(jobs).where(jobs.c.pk == job_pk)).first()
    if row is None:
        raise JobNotFoundError(str(job_pk))
    return _job_from_row(row_dict(row))


def find_job(conn: Connection, fingerprint: str) -> Job | None:
    """The published job whose input and settings hash to `fingerprint`."""
    row = conn.execute(
        sa.select(jobs).where(jobs.c.fingerprint == fingerprint, jobs.c.id.is_not(None))
    ).first()
    return None if row is None else _job_from_row(row_dict(row))


def list_jobs(conn: Connection) -> list[Job]:
    rows = conn.execute(
        sa.select(jobs).where(jobs.c.id.is_not(None)).order_by(jobs.c.created_at.desc())
    )
    return [_job_from_row(row_dict(row)) for row in rows]


def active_job_pks(conn: Connection) -> list[int]:
    """Jobs that workers should be moving on."""
    stmt = sa.select(jobs.c.pk).where(jobs.c.status.in_(ACTIVE_JOB_STATUSES))
    return [int(pk) for pk in conn.execute(stmt).scalars()]


def latest_job(conn: Connection) -> Job | None:
    found = list_jobs(conn)
    return found[0] if found else None


def set_status(
    conn: Connection, job_pk: int, status: JobStatus, *, only_from: tuple[JobStatus, ...] = ()
) -> bool:
    """Guarded job status change; returns whether it happened."""
    stmt = sa.update(jobs).where(jobs.c.pk == job_pk)
    if only_from:
        stmt = stmt.where(jobs.c.status.in_(list(only_from)))
    values: dict[str, Any] = {"status": status, "updated_at": now()}
    if status == JobStatus.FINISHED:
        values["finished_at"] = now()
    if status == JobStatus.RUNNING:
        values["error"] = None  # a stopped job run again: its old error is history
    return conn.execute(stmt.values(**values)).rowcount == 1


def fail_job(conn: Connection, job_pk: int, message: str) -> bool:
    """Stop an active job with a message for the user; whether it was active."""
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk, jobs.c.status.in_(list(ACTIVE_JOB_STATUSES)))
        .values(status=JobStatus.FAILED, error=message, updated_at=now())
    )
    return conn.execute(stmt).rowcount == 1


def pause_job(conn: Connection, job_pk: int, reason: str) -> bool:
    """A running job stops until the user resumes it; whether it was running."""
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk, jobs.c.status == JobStatus.RUNNING)
        .values(status=JobStatus.PAUSED, stop_reason=reason, updated_at=now())
    )
    return conn.execute(stmt).rowcount == 1


def reopen_job(conn: Connection, job_pk: int) -> bool:
    """A failed or paused job runs again (how a user carries on); whether it did."""
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk, jobs.c.status.in_([JobStatus.FAILED, JobStatus.PAUSED]))
        .values(status=JobStatus.RUNNING, stop_reason=None, updated_at=now())
    )
    return conn.execute(stmt).rowcount == 1


def set_budget(conn: Connection, job_pk: int, max_cost_usd: float | None) -> None:
    """The most the job may spend in all (None: no limit); replaces the one before."""
    conn.execute(sa.update(jobs).where(jobs.c.pk == job_pk).values(max_cost_usd=max_cost_usd))


def set_hold(conn: Connection, job_pk: int, hold_from_idx: int | None) -> None:
    """Hold back the requests from input index `hold_from_idx` on (None: release them)."""
    conn.execute(sa.update(jobs).where(jobs.c.pk == job_pk).values(hold_from_idx=hold_from_idx))


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """What the budget check adds up (USD, as floats the way costs are stored)."""

    spent: float  #: the actual cost of every answer so far
    in_flight: float  #: the worst case of every chunk sent and not yet fetched
    in_flight_chunks: int


def budget_figures(conn: Connection, job_pk: int) -> BudgetFigures:
    """Spent so far (one pass over the job's tally index) and the worst case in flight (a
    handful of chunk rows; a chunk without its sum gets it from its requests)."""
    spent = conn.execute(
        sa.select(sa.func.sum(requests.c.cost_usd)).where(requests.c.job_pk == job_pk)
    ).scalar()
    own = (
        sa.select(sa.func.sum(requests.c.worst_usd))
        .where(requests.c.chunk_id == chunks.c.id)
        .scalar_subquery()
    )
    sent = (ChunkStatus.SUBMITTING, ChunkStatus.SUBMITTED, ChunkStatus.ENDED)
    worst, n = conn.execute(
        sa.select(sa.func.sum(sa.func.coalesce(chunks.c.worst_usd, own)), sa.func.count()).where(
            chunks.c.job_pk == job_pk, chunks.c.status.in_(list(sent))
        )
    ).one()
    return BudgetFigures(float(spent or 0.0), float(worst or 0.0), int(n))


def job_status(store: Store, job_pk: int) -> JobStatus:
    """The job's status alone (one row)."""
    with store.begin() as conn:
        found = conn.execute(sa.select(jobs.c.status).where(jobs.c.pk == job_pk)).scalar()
    if found is None:
        raise JobNotFoundError(str(job_pk))
    return JobStatus(found)


def add_job(
    conn: Connection,
    input_path: Path | str,
    input_format: str,
    settings: dict[str, Any],
    output_dir: Path,
) -> int:
    """A new job row, still ingesting (invisible to workers and lists); its pk. A string
    `input_path` is kept as it is (requests that came from code name no file)."""
    t = now()
    stmt = jobs.insert().values(
        status=JobStatus.INGESTING,
        input_path=input_path if isinstance(input_path, str) else str(input_path.resolve()),
        input_format=input_format,
        settings_json=orjson.dumps(settings),
        total_requests=0,
        next_chunk_seq=0,
        output_dir=str(output_dir.resolve()),
        created_at=t,
        updated_at=t,
    )
    return int(conn.execute(stmt.returning(jobs.c.pk)).scalar_one())


def publish_job(conn: Connection, job_pk: int, job_id: str, fingerprint: str, total: int) -> None:
    """An ingested job gets its id and starts running."""
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.pk == job_pk)
        .values(
            id=job_id,
            fingerprint=fingerprint,
            status=JobStatus.RUNNING,
            total_requests=total,
            updated_at=now(),
        )
    )


@dataclass(slots=True)
class Tally:
    """What progress and summaries show of a job's requests."""

    counts: JobCounts
    usage: Usage
    cost_usd: float | None  #: batch prices, cache tokens included; None before any answer
    retrying: int  #: waiting for a new chunk, or in one after an earlier answer


def job_tally(conn: Connection, job_pk: int) -> Tally:
    """Counts by status, token usage, cost and retries in flight, in one pass over the
    job's entries of the tally index (in status order, so grouping needs no sort): at a
    million requests each pass is a tenth of a second or more."""
    c = requests.c
    stmt = (
        sa.select(
            c.status,
            sa.func.count(),
            sa.func.sum(c.input_tokens),
            sa.func.sum(c.output_tokens),
            sa.func.sum(c.cache_creation_tokens),
            sa.func.sum(c.cache_read_tokens),
            sa.func.sum(c.cost_usd),
            sa.func.sum(sa.case((c.attempts > 0, 1), else_=0)),
        )
        .where(c.job_pk == job_pk)
        .group_by(c.status)
    )
    by_status: dict[str, int] = {}
    tokens = [0, 0, 0, 0]
    cost: float | None = None
    retrying = 0
    for status, n, *sums, spent, tried in conn.execute(stmt):
        by_status[str(status)] = int(n)
        tokens = [total + int(value or 0) for total, value in zip(tokens, sums, strict=True)]
        if spent is not None:
            cost = (cost or 0.0) + float(spent)
        if status == RequestStatus.RETRY:
            retrying += int(n)
        elif status == RequestStatus.QUEUED:
            retrying += int(tried or 0)
    return Tally(JobCounts(by_status), Usage(*tokens), cost, retrying)


def active_chunk_count(conn: Connection, job_pk: int) -> int:
    stmt = sa.select(sa.func.count()).where(
        chunks.c.job_pk == job_pk, chunks.c.status.in_(list(ACTIVE_CHUNK_STATUSES))
    )
    return int(conn.execute(stmt).scalar_one())


def unfinished_count(conn: Connection, job_pk: int) -> int:
    # IN the unfinished statuses, not NOT IN the final ones: two short seeks of the tally
    # index instead of a scan of every request of the job
    unfinished = [s for s in RequestStatus if s not in FINAL_REQUEST_STATUSES]
    stmt = sa.select(sa.func.count()).where(
        requests.c.job_pk == job_pk, requests.c.status.in_(unfinished)
    )
    return int(conn.execute(stmt).scalar_one())


def error_counts(conn: Connection, job_pk: int) -> dict[str, int]:
    """Requests not (yet) succeeded, by the error type of their last attempt."""
    c = requests.c
    # the other statuses by name, so the index skips the succeeded ones instead of reading them
    others = [status for status in RequestStatus if status != RequestStatus.SUCCEEDED]
    stmt = (
        sa.select(c.error_type, sa.func.count())
        .where(c.job_pk == job_pk, c.status.in_(others), c.error_type.is_not(None))
        .group_by(c.error_type)
    )
    return {str(kind): int(n) for kind, n in conn.execute(stmt)}


def attempt_history(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    """Every answer the job's requests got, summed by round, outcome and error type."""
    stmt = (
        sa.select(chunks.c.round, attempts.c.outcome, attempts.c.error_type, sa.func.count())
        .select_from(attempts.join(chunks, chunks.c.id == attempts.c.chunk_id))
        .where(chunks.c.job_pk == job_pk)
        .group_by(chunks.c.round, attempts.c.outcome, attempts.c.error_type)
        .order_by(chunks.c.round, attempts.c.outcome, attempts.c.error_type)
    )
    return [
        {"round": int(r), "outcome": str(o), "error_type": e, "requests": int(n)}
        for r, o, e, n in conn.execute(stmt)
    ]


@dataclass
class Snapshot:
    """The state of a job as the store has it at one moment."""

    job: Job
    counts: JobCounts
    usage: Usage
    chunks: list[chunk_rows.Chunk] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    retrying: int = 0
    cost_usd: float | None = None
    taken_at: float = field(default_factory=time.time)
    #: live processes that can move the job on (workers, a run of it); None: not looked
    working: int | None = None
    #: set by the runner while the store cannot be reached: this look is the last one
    #: taken before, and this says why no newer one can be
    store_waiting: str | None = None
    #: every answer so far, summed by round, outcome and error type (`attempt_history`);
    #: filled only by a full look, not by the frequent progress snapshots
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running_batches(self) -> list[str]:
        return [c.batch_id for c in self.chunks if c.status == ChunkStatus.SUBMITTED and c.batch_id]


def snapshot(store: Store, job_pk: int) -> Snapshot:
    """One consistent look at a job: its row, tally, chunks and errors."""
    with store.begin() as conn:
        tally = job_tally(conn, job_pk)
        return Snapshot(
            job=get_job_by_pk(conn, job_pk),
            counts=tally.counts,
            usage=tally.usage,
            chunks=chunk_rows.job_chunks(conn, job_pk),
            errors=error_counts(conn, job_pk),
            retrying=tally.retrying,
            cost_usd=tally.cost_usd,
        )
