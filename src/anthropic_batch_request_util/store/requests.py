"""Request rows: added at ingest, assigned to chunks, given their answers, or ended
without one. A request's body lives in `bodies`, its results-file line in `result_lines`
or `outputs`; its row holds what progress counts (status, attempts, tokens, cost)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from .db import Connection
from .schema import RequestStatus, requests
from .segments import uint32s, unpack_uint32s
from .sql import executemany, insert_rows, stream_rows, update_rows

__all__ = [
    "AnswerRow",
    "Members",
    "add_requests",
    "assign",
    "cancel_chunk_rows",
    "cancel_waiting_rows",
    "duplicate_custom_ids",
    "ended_rows",
    "fail_chunk_rows",
    "members",
    "missing_worst",
    "record_answer_rows",
    "retry_missing",
    "retry_rows",
    "set_worst",
    "store_outputs",
    "unfinished_worst",
]

_ADD_COLUMNS = ("job_pk", "idx", "custom_id", "chunk_id")
_NEW_REQUEST = {
    "status": RequestStatus.QUEUED.value,
    "attempts": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_creation_tokens": 0,
    "cache_read_tokens": 0,
}
#: what storing an answer sets in its request row, found by _ANSWER_KEYS
_ANSWER_COLUMNS = (
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost_usd",
    "attempts",
)
_ANSWER_KEYS = ("job_pk", "idx", "chunk_id")
_ATTEMPT_COLUMNS = ("chunk_id", "idx", "outcome", "error_type")


#: What one result line makes of its request, as plain values (no object per answer): what
#: an answers file holds and what `record_answer_rows` writes. In order: input index, new
#: status (its value), outcome (the result type the API gave), error type, input, output,
#: cache-creation and cache-read tokens, cost in USD, attempts, the results-file line.
AnswerRow = tuple[int, str, str, str | None, int, int, int, int, float | None, int, bytes]


def add_requests(conn: Connection, rows: Sequence[tuple[int, int, str, int]]) -> None:
    """New queued requests: rows of (job_pk, idx, custom_id, chunk_id)."""
    insert_rows(conn, "requests", _ADD_COLUMNS, rows, _NEW_REQUEST)


def assign(conn: Connection, job_pk: int, idxs: Sequence[int], chunk_id: int) -> None:
    """Put requests into a (retry) chunk: queued again, in that chunk."""
    conn.execute(
        sa.update(requests)
        .where(requests.c.job_pk == job_pk, requests.c.idx == sa.bindparam("b_idx"))
        .values(chunk_id=chunk_id, status=RequestStatus.QUEUED),
        [{"b_idx": idx} for idx in idxs],
    )


@dataclass(frozen=True, slots=True)
class Members:
    """A chunk's requests, packed: no Python object per request while they are held or
    handed to the helper process. Custom ids never hold a newline (the API's pattern)."""

    custom_ids: bytes  #: joined by newlines
    idxs: bytes  #: input indexes (uint32)
    attempts: bytes  #: attempts answered before this chunk's (uint32)

    def table(self) -> dict[str, tuple[int, int]]:
        """custom_id -> (input index, attempts before this chunk's)."""
        if not self.custom_ids:
            return {}
        ids = self.custom_ids.decode().split("\n")
        pairs = zip(unpack_uint32s(self.idxs), unpack_uint32s(self.attempts), strict=True)
        return dict(zip(ids, pairs, strict=True))

    @classmethod
    def of(cls, rows: Iterable[Sequence[Any]]) -> Members:
        """From rows of (custom_id, input index, attempts)."""
        ids: list[str] = []
        idxs, attempts = array("I"), array("I")
        for custom_id, idx, n in rows:
            ids.append(custom_id)
            idxs.append(idx)
            attempts.append(n)
        return cls("\n".join(ids).encode(), uint32s(idxs), uint32s(attempts))


def members(conn: Connection, chunk_id: int) -> Members:
    """The chunk's requests: custom_id, input index, answered attempts before this chunk's."""
    sql = "SELECT custom_id, idx, attempts FROM requests WHERE chunk_id = ?"
    return Members.of(stream_rows(conn, sql, (chunk_id,)))


def retry_rows(conn: Connection, chunk_id: int) -> list[int]:
    """The input indexes of the chunk's requests waiting for another attempt, ascending."""
    stmt = (
        sa.select(requests.c.idx)
        .where(requests.c.chunk_id == chunk_id, requests.c.status == RequestStatus.RETRY)
        .order_by(requests.c.idx)
    )
    return [int(idx) for idx in conn.execute(stmt).scalars()]


def ended_rows(
    conn: Connection,
    job_pk: int,
    statuses: Sequence[RequestStatus],
    skip_error_types: Sequence[str] = (),
) -> list[int]:
    """The input indexes of the job's requests that ended in one of `statuses`, leaving
    out those whose error type is in `skip_error_types`, ascending."""
    c = requests.c
    stmt = sa.select(c.idx).where(c.job_pk == job_pk, c.status.in_([s.value for s in statuses]))
    if skip_error_types:
        stmt = stmt.where(sa.or_(c.error_type.is_(None), c.error_type.not_in(skip_error_types)))
    return [int(idx) for idx in conn.execute(stmt.order_by(c.idx)).scalars()]


def record_answer_rows(
    conn: Connection, job_pk: int, chunk_id: int, rows: Sequence[AnswerRow], *, own_lines: bool
) -> None:
    """Write answers into their request rows and record each attempt. With `own_lines`
    (a retry's answers) each line is stored as a row of `outputs`, replacing an earlier
    one; otherwise the caller stores the lines as the chunk's segments (result_lines.py)."""
    update_rows(
        conn,
        "requests",
        _ANSWER_COLUMNS,
        _ANSWER_KEYS,
        [(r[1], *r[3:10], job_pk, r[0], chunk_id) for r in rows],
    )
    insert_rows(conn, "attempts", _ATTEMPT_COLUMNS, [(chunk_id, r[0], r[2], r[3]) for r in rows])
    if own_lines:
        store_outputs(conn, [(job_pk, r[0], r[10]) for r in rows])


def store_outputs(conn: Connection, rows: Sequence[tuple[int, int, bytes]]) -> None:
    """Store or replace results-file lines: rows of (job_pk, idx, line)."""
    executemany(
        conn,
        "INSERT INTO outputs (job_pk, idx, output) VALUES (?, ?, ?)"
        " ON CONFLICT (job_pk, idx) DO UPDATE SET output = excluded.output",
        rows,
    )


def retry_missing(conn: Connection, job_pk: int, idxs: Sequence[int]) -> None:
    """Requests a batch did not answer (only after a mistaken reconcile): try again."""
    for idx in idxs:
        conn.execute(
            sa.update(requests)
            .where(requests.c.job_pk == job_pk, requests.c.idx == idx)
            .values(status=RequestStatus.RETRY, error_type="missing_result")
        )


def _end_rows(
    conn: Connection,
    where: Any,
    status: RequestStatus,
    line_of: Callable[[str, int], bytes],
    error_type: str | None = None,
) -> None:
    """End the requests `where` picks with `status` (and `error_type`, when given) without
    an answer: each gets the results-file line `line_of(custom_id, attempts)`."""
    rows = conn.execute(
        sa.select(
            requests.c.job_pk, requests.c.idx, requests.c.custom_id, requests.c.attempts
        ).where(where)
    ).all()
    columns: tuple[str, ...] = ("status",)
    values: tuple[str, ...] = (status.value,)
    if error_type is not None:
        columns, values = ("status", "error_type"), (status.value, error_type)
    update_rows(
        conn, "requests", columns, ("job_pk", "idx"), [(*values, pk, idx) for pk, idx, _, _ in rows]
    )
    store_outputs(conn, [(pk, idx, line_of(cid, n)) for pk, idx, cid, n in rows])


_NOT_SENT = {"type": "canceled", "message": "the job was canceled before this request was sent"}


def _canceled_line(custom_id: str, attempts_made: int) -> bytes:
    return orjson.dumps(
        {
            "custom_id": custom_id,
            "status": "canceled",
            "error": _NOT_SENT,
            "attempts": attempts_made,
            "batch_id": None,
        }
    )


def fail_chunk_rows(conn: Connection, chunk_id: int, error_type: str, message: str) -> None:
    """The API refused the whole chunk for good: its requests end errored."""
    error = {"type": error_type, "message": message}

    def line_of(custom_id: str, attempts_made: int) -> bytes:
        return orjson.dumps(
            {"custom_id": custom_id, "status": "errored", "error": error, "attempts": attempts_made}
        )

    _end_rows(conn, requests.c.chunk_id == chunk_id, RequestStatus.ERRORED, line_of, error_type)


def cancel_waiting_rows(conn: Connection, job_pk: int) -> None:
    """Rows waiting for a retry are canceled: they will not be sent again."""
    where = sa.and_(requests.c.job_pk == job_pk, requests.c.status == RequestStatus.RETRY)
    _end_rows(conn, where, RequestStatus.CANCELED, _canceled_line)


def cancel_chunk_rows(conn: Connection, chunk_id: int) -> None:
    """The rows of a chunk that was never sent are canceled."""
    _end_rows(conn, requests.c.chunk_id == chunk_id, RequestStatus.CANCELED, _canceled_line)


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


def missing_worst(conn: Connection, job_pk: int) -> list[int]:
    """The input indexes, ascending, of the job's requests without a worst case yet."""
    sql = "SELECT idx FROM requests WHERE job_pk = ? AND worst_usd IS NULL ORDER BY idx"
    return [int(idx) for (idx,) in stream_rows(conn, sql, (job_pk,))]


def set_worst(conn: Connection, job_pk: int, rows: Sequence[tuple[int, float]]) -> None:
    """Requests' worst cases: rows of (idx, worst USD)."""
    update_rows(
        conn, "requests", ("worst_usd",), ("job_pk", "idx"), [(w, job_pk, i) for i, w in rows]
    )


def unfinished_worst(
    conn: Connection, job_pk: int, *, below_idx: int | None = None
) -> tuple[int, float]:
    """How many of the job's requests (with `below_idx`, of those before that input index)
    have no final status yet, and their worst cases summed."""
    c = requests.c
    waiting = [RequestStatus.QUEUED, RequestStatus.RETRY]
    stmt = sa.select(sa.func.count(), sa.func.sum(c.worst_usd)).where(
        c.job_pk == job_pk, c.status.in_(waiting)
    )
    if below_idx is not None:
        stmt = stmt.where(c.idx < below_idx)
    n, worst = conn.execute(stmt).one()
    return int(n), float(worst or 0.0)
