"""Chunk state in the store: leases with fencing tokens and guarded transitions.

A worker acts on a chunk only while it holds the chunk's lease. Taking the lease bumps
`lease_token`; every later write of that worker carries the token in its WHERE clause, so a
worker whose lease was taken over (a redelivered task, a paused process) writes nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .store import (
    LEASE_S,
    ChunkStatus,
    Store,
    chunks,
    heartbeat,
    locks,
    now,
    row_dict,
    stream_rows,
)

__all__ = ["Chunk", "Lease", "claim", "get_chunk", "release", "transition"]


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
    fingerprint: str
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
    lease_s: float = LEASE_S,
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


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _dead_here(owner: str | None, prefix: str) -> bool:
    """Whether `owner` ("host:pid:thread") names a process of this host that is gone."""
    if not owner or not owner.startswith(prefix):
        return False
    pid = owner.removeprefix(prefix).split(":", 1)[0]
    return pid.isdigit() and not pid_alive(int(pid))


def reap_dead_leases(store: Store) -> int:
    """Free chunk leases and store locks held by processes of this host that no longer
    exist (a killed run or worker), so nobody waits for them to expire. Returns how many."""
    prefix = f"{socket.gethostname()}:"
    t = now()
    freed = 0
    with store.begin() as conn:
        held = conn.execute(
            sa.select(chunks.c.id, chunks.c.lease_owner, chunks.c.lease_token).where(
                chunks.c.lease_owner.startswith(prefix), chunks.c.lease_expires_at > t
            )
        ).all()
        for chunk_id, owner, token in held:
            if _dead_here(owner, prefix):
                freed += conn.execute(
                    sa.update(chunks)
                    .where(chunks.c.id == chunk_id, chunks.c.lease_token == token)
                    .values(lease_owner=None, lease_expires_at=None)
                ).rowcount
        for name, owner, token in conn.execute(
            sa.select(locks.c.name, locks.c.owner, locks.c.token).where(locks.c.expires_at > t)
        ).all():
            if _dead_here(owner, prefix):
                freed += conn.execute(
                    sa.update(locks)
                    .where(locks.c.name == name, locks.c.token == token)
                    .values(owner=None, expires_at=None)
                ).rowcount
    return freed


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
        with heartbeat(lambda: renew(store, lease)):
            yield lease
    finally:
        release(store, lease)


def renew(store: Store, lease: Lease) -> bool:
    """Push the lease's expiry out, if it is still ours."""
    with store.begin() as conn:
        return update_fenced(conn, lease, lease_expires_at=now() + LEASE_S)


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


def members(conn: Connection, chunk_id: int) -> dict[str, tuple[int, int]]:
    """custom_id -> (input index, answered attempts before this chunk's) for its requests."""
    sql = "SELECT custom_id, idx, attempts FROM requests WHERE chunk_id = ?"
    return {cid: (idx, n) for cid, idx, n in stream_rows(conn, sql, (chunk_id,))}


def recorded_batch_ids(conn: Connection, batch_ids: Iterable[str]) -> set[str]:
    """Which of `batch_ids` some chunk already owns."""
    ids = list(batch_ids)
    if not ids:
        return set()
    stmt = sa.select(chunks.c.batch_id).where(chunks.c.batch_id.in_(ids))
    return {str(value) for value in conn.execute(stmt).scalars()}
