"""Chunk rows: cutting new chunks, leases with fencing tokens, guarded transitions, and the
store's side of the exactly-once create (the submit turn).

A worker acts on a chunk only while it holds the chunk's lease. Taking the lease bumps
`lease_token`; every later write of that worker carries the token in its WHERE clause, so a
worker whose lease was taken over (a redelivered task, a paused process) writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from . import locks
from .db import Connection, Store, now, row_dict
from .schema import ChunkStatus, chunks, jobs

__all__ = [
    "HELD_BACK",
    "SUBMIT_LOCK",
    "BatchTakenError",
    "Chunk",
    "Lease",
    "Watched",
    "add_chunk",
    "claim",
    "end_create_turn",
    "get_chunk",
    "in_flight_requests",
    "job_chunks",
    "last_round",
    "leased",
    "mark_ended",
    "next_pending",
    "next_seq",
    "note_watched",
    "record_batch",
    "recorded_batch_ids",
    "release",
    "renew_create_turn",
    "set_size",
    "take_create_turn",
    "transition",
    "update_fenced",
    "watched_chunks",
]

SUBMIT_LOCK = "submit"  #: the store-wide lock held around every batch create
HELD_BACK = 0  #: `take_create_turn`'s answer when its gate holds the chunk back


class BatchTakenError(Exception):
    """The batch id is recorded for another chunk already."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that one worker owns one chunk until `expires_at`."""

    chunk_id: int
    token: int
    owner: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk row, read once."""

    id: int
    job_pk: int
    seq: int
    round: int
    status: ChunkStatus
    request_count: int
    body_bytes: int
    batch_id: str | None
    intent_at: float | None
    submitted_at: float | None
    poll_interval: float | None
    next_poll_at: float | None
    processing_status: str | None
    counts: dict[str, int]
    fetch_attempts: int
    error: str | None
    updated_at: float
    lease_expires_at: float | None
    worst_usd: float | None


def get_chunk(conn: Connection, chunk_id: int) -> Chunk | None:
    row = conn.execute(sa.select(chunks).where(chunks.c.id == chunk_id)).first()
    return None if row is None else _chunk_from_row(row_dict(row))


def _chunk_from_row(row: dict[str, Any]) -> Chunk:
    counts = orjson.loads(row["counts_json"]) if row["counts_json"] else {}
    fields = {name: row[name] for name in Chunk.__slots__ if name in row}
    fields.update(status=ChunkStatus(row["status"]), counts=counts)
    return Chunk(**fields)


def next_pending(conn: Connection, job_pk: int) -> int | None:
    """The job's first chunk still waiting to be sent, if any."""
    stmt = (
        sa.select(chunks.c.id)
        .where(chunks.c.job_pk == job_pk, chunks.c.status == ChunkStatus.PENDING)
        .order_by(chunks.c.seq)
        .limit(1)
    )
    found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def job_chunks(conn: Connection, job_pk: int) -> list[Chunk]:
    rows = conn.execute(sa.select(chunks).where(chunks.c.job_pk == job_pk).order_by(chunks.c.seq))
    return [_chunk_from_row(row_dict(row)) for row in rows]


def claim(
    store: Store,
    chunk_id: int,
    owner: str,
    statuses: Sequence[ChunkStatus],
    lease_s: float = locks.LEASE_S,
) -> Lease | None:
    """Take the chunk's lease if it is in one of `statuses` and nobody else holds it."""
    t = now()
    free = sa.or_(
        chunks.c.lease_expires_at.is_(None),
        chunks.c.lease_expires_at < t,
        chunks.c.lease_owner == owner,
    )
    stmt = (
        sa.update(chunks)
        .where(chunks.c.id == chunk_id, chunks.c.status.in_(list(statuses)), free)
        .values(
            lease_owner=owner,
            lease_token=chunks.c.lease_token + 1,
            lease_expires_at=t + lease_s,
            updated_at=t,
        )
        .returning(chunks.c.lease_token)
    )
    with store.begin() as conn:
        token = conn.execute(stmt).scalar()
    return None if token is None else Lease(chunk_id, int(token), owner)


@contextmanager
def leased(
    store: Store, chunk_id: int, owner: str, statuses: Sequence[ChunkStatus]
) -> Iterator[Lease | None]:
    """Hold the chunk's lease for the block (None if someone else has it); always given
    back, also when the block fails, so a crashed step never blocks the chunk."""
    lease = claim(store, chunk_id, owner, statuses)
    if lease is None:
        yield None
        return
    try:
        with locks.heartbeat(lambda: renew(store, lease)):
            yield lease
    finally:
        store.give_back(lambda: release(store, lease))


def renew(store: Store, lease: Lease) -> bool:
    """Push the lease's expiry out, if it is still ours."""
    with store.begin() as conn:
        return update_fenced(conn, lease, lease_expires_at=now() + locks.LEASE_S)


def release(store: Store, lease: Lease) -> None:
    """Give the lease back early so the next step need not wait for it to expire."""
    with store.begin() as conn:
        conn.execute(
            sa.update(chunks)
            .where(chunks.c.id == lease.chunk_id, chunks.c.lease_token == lease.token)
            .values(lease_owner=None, lease_expires_at=None)
        )


def transition(
    conn: Connection,
    lease: Lease,
    from_status: ChunkStatus,
    to_status: ChunkStatus,
    **values: Any,
) -> bool:
    """Move the chunk on, only if it is still where we left it and the lease is still ours."""
    result = conn.execute(
        sa.update(chunks)
        .where(
            chunks.c.id == lease.chunk_id,
            chunks.c.status == from_status,
            chunks.c.lease_token == lease.token,
        )
        .values(status=to_status, updated_at=now(), **values)
    )
    return result.rowcount == 1


def update_fenced(conn: Connection, lease: Lease, **values: Any) -> bool:
    """Write chunk fields without changing its status, if the lease is still ours."""
    result = conn.execute(
        sa.update(chunks)
        .where(chunks.c.id == lease.chunk_id, chunks.c.lease_token == lease.token)
        .values(updated_at=now(), **values)
    )
    return result.rowcount == 1


def recorded_batch_ids(conn: Connection, batch_ids: Iterable[str]) -> set[str]:
    """Which of `batch_ids` some chunk already owns."""
    ids = list(batch_ids)
    if not ids:
        return set()
    stmt = sa.select(chunks.c.batch_id).where(chunks.c.batch_id.in_(ids))
    return {str(value) for value in conn.execute(stmt).scalars()}


def next_seq(conn: Connection, job_pk: int) -> int:
    """The job's next chunk number; the row update serializes concurrent callers."""
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk)
        .values(next_chunk_seq=jobs.c.next_chunk_seq + 1)
        .returning(jobs.c.next_chunk_seq)
    )
    return int(conn.execute(stmt).scalar_one()) - 1


def last_round(conn: Connection, job_pk: int) -> int:
    """The highest round any chunk of the job belongs to (0 for a job without chunks)."""
    stmt = sa.select(sa.func.max(chunks.c.round)).where(chunks.c.job_pk == job_pk)
    return int(conn.execute(stmt).scalar() or 0)


def add_chunk(
    conn: Connection, job_pk: int, round_: int, request_count: int = 0, body_bytes: int = 0
) -> int:
    """A new pending chunk of round `round_` (1 for ingest, 2.. for retries), numbered
    next in its job; its id. Its requests are assigned to it by requests.assign (or at
    ingest, as they are added)."""
    stmt = chunks.insert().values(
        job_pk=job_pk,
        seq=next_seq(conn, job_pk),
        round=round_,
        status=ChunkStatus.PENDING,
        request_count=request_count,
        body_bytes=body_bytes,
        lease_token=0,
        fetch_attempts=0,
        updated_at=now(),
    )
    return int(conn.execute(stmt.returning(chunks.c.id)).scalar_one())


def set_size(conn: Connection, chunk_id: int, request_count: int, body_bytes: int) -> None:
    """What a chunk holds, once ingest has put its last request in it."""
    conn.execute(
        sa.update(chunks)
        .where(chunks.c.id == chunk_id)
        .values(request_count=request_count, body_bytes=body_bytes)
    )


def take_create_turn(
    store: Store,
    lease: Lease,
    *,
    first: bool,
    gate: Callable[[Connection, int], bool] | None = None,
) -> int | None:
    """Take the store-wide submit lock (one create at a time per store); for a chunk never
    sent before (`first`), ask `gate` (the budget) and write its submit intent, in the same
    transaction. The lock's token; None when another create holds it; `HELD_BACK` (and the
    lock given back) when the gate holds the chunk back."""
    with store.begin() as conn:
        token = locks.acquire(conn, SUBMIT_LOCK, lease.owner)
        if token is not None and first:
            if gate is not None and not gate(conn, lease.chunk_id):
                locks.release(conn, SUBMIT_LOCK, token)
                return HELD_BACK
            transition(conn, lease, ChunkStatus.PENDING, ChunkStatus.SUBMITTING, intent_at=now())
    return token


def renew_create_turn(store: Store, token: int) -> None:
    locks.renew(store, SUBMIT_LOCK, token)


def end_create_turn(store: Store, token: int) -> None:
    """Give the submit lock back without recording a batch."""
    with store.begin() as conn:
        locks.release(conn, SUBMIT_LOCK, token)


def record_batch(
    store: Store,
    lease: Lease,
    token: int,
    *,
    batch_id: str,
    created_at: float,
    processing_status: str,
    poll_interval: float,
) -> bool:
    """SUBMITTING -> SUBMITTED with the batch id, and the submit lock given back, in one
    transaction: the next create may start exactly when this batch is on record. Whether
    the lease was still ours. Raises `BatchTakenError` when another chunk owns the batch."""
    try:
        with store.begin() as conn:
            won = transition(
                conn,
                lease,
                ChunkStatus.SUBMITTING,
                ChunkStatus.SUBMITTED,
                batch_id=batch_id,
                submitted_at=created_at,
                processing_status=processing_status,
                poll_interval=poll_interval,
                next_poll_at=now() + poll_interval,
            )
            locks.release(conn, SUBMIT_LOCK, token)
    except sa.exc.IntegrityError as error:
        raise BatchTakenError(batch_id) from error
    return won


@dataclass(frozen=True, slots=True)
class Watched:
    """A submitted chunk as the watch step sees it: its batch and when it was made."""

    id: int
    batch_id: str
    submitted_at: float
    poll_interval: float | None


def watched_chunks(conn: Connection, job_pk: int) -> list[Watched]:
    """The job's chunks whose batch is still processing, as far as the store knows."""
    stmt = sa.select(
        chunks.c.id, chunks.c.batch_id, chunks.c.submitted_at, chunks.c.poll_interval
    ).where(chunks.c.job_pk == job_pk, chunks.c.status == ChunkStatus.SUBMITTED)
    return [
        Watched(int(cid), str(batch_id), float(submitted_at or 0.0), interval)
        for cid, batch_id, submitted_at, interval in conn.execute(stmt)
    ]


def note_watched(
    conn: Connection,
    seen: Iterable[tuple[int, str, bytes]],
    job_pk: int,
    poll_interval: float,
) -> None:
    """What one look at the batches found: (chunk id, processing status, counts JSON) of
    each still processing, and when the job's submitted chunks are looked at next. Only
    chunks still SUBMITTED are written."""
    t = now()
    conn.execute(
        sa.update(chunks)
        .where(chunks.c.job_pk == job_pk, chunks.c.status == ChunkStatus.SUBMITTED)
        .values(poll_interval=poll_interval, next_poll_at=t + poll_interval)
    )
    rows = [{"cid": cid, "ps": status, "cj": counts} for cid, status, counts in seen]
    if rows:
        conn.execute(
            sa.update(chunks)
            .where(chunks.c.id == sa.bindparam("cid"), chunks.c.status == ChunkStatus.SUBMITTED)
            .values(processing_status=sa.bindparam("ps"), counts_json=sa.bindparam("cj")),
            rows,
        )


def mark_ended(conn: Connection, chunk_id: int, counts_json: bytes) -> bool:
    """SUBMITTED -> ENDED once its batch has ended, unless someone holds the chunk's lease;
    whether this call moved it (and so owes it a fetch)."""
    t = now()
    result = conn.execute(
        sa.update(chunks)
        .where(
            chunks.c.id == chunk_id,
            chunks.c.status == ChunkStatus.SUBMITTED,
            sa.or_(chunks.c.lease_expires_at.is_(None), chunks.c.lease_expires_at < t),
        )
        .values(
            status=ChunkStatus.ENDED,
            processing_status="ended",
            counts_json=counts_json,
            ended_at=t,
            updated_at=t,
        )
    )
    return result.rowcount == 1


def in_flight_requests(conn: Connection) -> int:
    """Requests in batches the store knows are still processing, across all jobs: what this
    store adds to the API's queue."""
    stmt = sa.select(sa.func.coalesce(sa.func.sum(chunks.c.request_count), 0)).where(
        chunks.c.status == ChunkStatus.SUBMITTED
    )
    return int(conn.execute(stmt).scalar_one())
