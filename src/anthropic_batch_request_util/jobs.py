"""Job-level reads and writes of the store: find, publish, count, summarize, export."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .errors import JobNotFoundError
from .store import (
    ACTIVE_CHUNK_STATUSES,
    ACTIVE_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    JobStatus,
    RequestStatus,
    chunks,
    jobs,
    now,
    requests,
    row_dict,
)

__all__ = ["Job", "JobCounts", "Tally", "Usage", "find_job", "get_job", "job_counts", "job_tally"]


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
    return conn.execute(stmt.values(**values)).rowcount == 1


def fail_job(conn: Connection, job_pk: int, message: str) -> None:
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.pk == job_pk)
        .values(status=JobStatus.FAILED, error=message, updated_at=now())
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


def job_counts(conn: Connection, job_pk: int) -> JobCounts:
    return job_tally(conn, job_pk).counts


def active_chunk_count(conn: Connection, job_pk: int) -> int:
    stmt = sa.select(sa.func.count()).where(
        chunks.c.job_pk == job_pk, chunks.c.status.in_(list(ACTIVE_CHUNK_STATUSES))
    )
    return int(conn.execute(stmt).scalar_one())


def unfinished_count(conn: Connection, job_pk: int) -> int:
    stmt = sa.select(sa.func.count()).where(
        requests.c.job_pk == job_pk, requests.c.status.not_in(list(FINAL_REQUEST_STATUSES))
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


def duplicate_custom_ids(conn: Connection, job_pk: int, limit: int = 20) -> list[tuple[str, int]]:
    """custom_ids used more than once in a job, with how often (checked in SQL, not memory)."""
    c = requests.c
    stmt = (
        sa.select(c.custom_id, sa.func.count())
        .where(c.job_pk == job_pk)
        .group_by(c.custom_id)
        .having(sa.func.count() > 1)
        .order_by(sa.func.min(c.idx))
        .limit(limit)
    )
    return [(str(cid), int(n)) for cid, n in conn.execute(stmt)]
