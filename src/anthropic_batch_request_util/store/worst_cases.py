"""The budget's side of chunks: their worst-case cost, and cutting a pending chunk shorter so
that what is sent fits what is left of a budget."""

from __future__ import annotations

import sqlalchemy as sa

from . import bodies
from .chunks import get_chunk, next_seq, set_size
from .db import Connection, now
from .schema import ACTIVE_CHUNK_STATUSES, ChunkStatus, chunks, requests
from .sql import stream_rows

__all__ = [
    "cut_before",
    "first_idx",
    "fitting_prefix",
    "set_worst",
    "split_chunk",
    "sum_worst",
]


def first_idx(conn: Connection, chunk_id: int) -> int | None:
    """The lowest input index among the chunk's requests (None: it has none)."""
    stmt = sa.select(sa.func.min(requests.c.idx)).where(requests.c.chunk_id == chunk_id)
    found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def fitting_prefix(conn: Connection, chunk_id: int, room: float) -> tuple[int, float]:
    """How many of the chunk's first requests (input order) have worst cases that sum to at
    most `room`, and that sum. A request without a worst case fits nothing."""
    sql = "SELECT worst_usd FROM requests WHERE chunk_id = ? ORDER BY idx"
    count, total = 0, 0.0
    for (worst,) in list(stream_rows(conn, sql, (chunk_id,))):
        if worst is None or total + float(worst) > room:
            break
        count, total = count + 1, total + float(worst)
    return count, total


def set_worst(conn: Connection, chunk_id: int, worst_usd: float) -> None:
    conn.execute(sa.update(chunks).where(chunks.c.id == chunk_id).values(worst_usd=worst_usd))


def sum_worst(conn: Connection, job_pk: int) -> None:
    """Each unfinished chunk's worst case: its requests' summed."""
    own = (
        sa.select(sa.func.sum(requests.c.worst_usd))
        .where(requests.c.chunk_id == chunks.c.id)
        .scalar_subquery()
    )
    conn.execute(
        sa.update(chunks)
        .where(chunks.c.job_pk == job_pk, chunks.c.status.in_(list(ACTIVE_CHUNK_STATUSES)))
        .values(worst_usd=own)
    )


def split_chunk(conn: Connection, chunk_id: int, keep: int) -> int:
    """Cut a pending chunk after its first `keep` requests (input order): the rest go to a
    new pending chunk of the same round, numbered right after it (later chunks move up
    one), so that first-round chunks still cover the input in order. The new chunk's id.
    Both then gather their bodies by index (bodies.chunk_body)."""
    chunk = get_chunk(conn, chunk_id)
    assert chunk is not None and chunk.status == ChunkStatus.PENDING
    assert 0 < keep < chunk.request_count
    sql = "SELECT idx FROM requests WHERE chunk_id = ? ORDER BY idx"
    idxs = [int(idx) for (idx,) in stream_rows(conn, sql, (chunk_id,))]
    sizes = [size for _idx, size in bodies.body_sizes(conn, chunk.job_pk, idxs)]
    next_seq(conn, chunk.job_pk)  # one more number: the later chunks move up into it
    later = sa.and_(chunks.c.job_pk == chunk.job_pk, chunks.c.seq > chunk.seq)
    # through negative numbers, so that no two chunks share a number on the way
    conn.execute(sa.update(chunks).where(later).values(seq=-chunks.c.seq - 2))
    moved = sa.and_(chunks.c.job_pk == chunk.job_pk, chunks.c.seq < 0)
    conn.execute(sa.update(chunks).where(moved).values(seq=-chunks.c.seq - 1))
    rest = chunks.insert().values(
        job_pk=chunk.job_pk,
        seq=chunk.seq + 1,
        round=chunk.round,
        status=ChunkStatus.PENDING,
        request_count=len(idxs) - keep,
        body_bytes=sum(sizes[keep:]),
        lease_token=0,
        fetch_attempts=0,
        updated_at=now(),
    )
    rest_id = int(conn.execute(rest.returning(chunks.c.id)).scalar_one())
    conn.execute(
        sa.update(requests)
        .where(requests.c.chunk_id == chunk_id, requests.c.idx >= idxs[keep])
        .values(chunk_id=rest_id)
    )
    set_size(conn, chunk_id, keep, sum(sizes[:keep]))
    conn.execute(sa.update(chunks).where(chunks.c.id == chunk_id).values(worst_usd=None))
    return rest_id


def cut_before(conn: Connection, job_pk: int, idx: int) -> None:
    """Make request `idx` the first of its chunk (a pending one), so that a canary of the
    requests before it is whole chunks."""
    stmt = sa.select(requests.c.chunk_id).where(requests.c.job_pk == job_pk, requests.c.idx == idx)
    chunk_id = conn.execute(stmt).scalar()
    if chunk_id is None:
        return
    before = conn.execute(
        sa.select(sa.func.count()).where(requests.c.chunk_id == chunk_id, requests.c.idx < idx)
    ).scalar_one()
    if before:
        split_chunk(conn, int(chunk_id), int(before))
