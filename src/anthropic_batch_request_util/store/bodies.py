"""Request bodies, stored as a few large blobs instead of one per request row.

Ingest writes the bodies of each run of consecutive requests of a chunk as one segment:
the bodies joined by commas, exactly as they sit in a create body, and the end offset of
each. Sending a first-round chunk then reads its segments and sends them as they are
(through a temporary file, so that no whole body is held in memory), and a request row
stays small, so storing its answer rewrites a few dozen bytes instead of its whole body.
A request retried in a later chunk is found in its segment by its index.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..inputs.chunking import batch_body_parts
from .db import Connection
from .segments import SEGMENT_MAX_BYTES, span, uint32s, unpack_uint32s
from .sql import executemany, first_row, stream_rows

__all__ = [
    "SegmentWriter",
    "body_sizes",
    "chunk_body",
    "chunk_body_parts",
    "iter_bodies",
    "spool_chunk_body",
]

_INSERT = (
    "INSERT INTO bodies (job_pk, first_idx, chunk_id, request_count, data, ends)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class SegmentWriter:
    """Collects consecutive bodies and writes them as segments (at a chunk's end, or when
    `SEGMENT_MAX_BYTES` are held): memory holds one segment, not a chunk. Bodies are
    copied into one buffer as they come: a serialized body keeps the few KB its encoder
    reserved, so a list of them would hold several times the segment's size."""

    def __init__(self, conn: Connection, job_pk: int) -> None:
        self.conn, self.job_pk = conn, job_pk
        self._data = bytearray()
        self._ends: array[int] = array("I")
        self._first = 0
        self._chunk_id = -1

    def add(self, idx: int, chunk_id: int, body: bytes) -> None:
        if self._ends and (chunk_id != self._chunk_id or len(self._data) > SEGMENT_MAX_BYTES):
            self.flush()
        if self._ends:
            self._data += b","
        else:
            self._first, self._chunk_id = idx, chunk_id
        self._data += body
        self._ends.append(len(self._data))

    def flush(self) -> None:
        if not self._ends:
            return
        row = (
            self.job_pk,
            self._first,
            self._chunk_id,
            len(self._ends),
            bytes(self._data),
            uint32s(self._ends),
        )
        executemany(self.conn, _INSERT, [row])
        self._data = bytearray()
        self._ends = array("I")


def chunk_body(conn: Connection, chunk_id: int, request_count: int) -> bytes:
    """The create body of a chunk, whole (`spool_chunk_body` for sending it)."""
    return b"".join(chunk_body_parts(conn, chunk_id, request_count))


def spool_chunk_body(conn: Connection, chunk_id: int, request_count: int) -> Path:
    """The create body of a chunk written to a temporary file, which the caller removes.
    Sent from the file, a body of up to 256 MB is never in memory whole: one segment is."""
    fd, name = tempfile.mkstemp(prefix=f"abr-body-{chunk_id}-", suffix=".json")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for part in chunk_body_parts(conn, chunk_id, request_count):
                handle.write(part)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def chunk_body_parts(conn: Connection, chunk_id: int, request_count: int) -> Iterator[bytes]:
    """The create body of a chunk in pieces: its own segments as stored when the chunk was
    cut at ingest, or (a retry chunk) its requests' bodies gathered from their segments."""
    stored = first_row(
        conn, "SELECT coalesce(sum(request_count), 0) FROM bodies WHERE chunk_id = ?", (chunk_id,)
    )
    if stored is not None and int(stored[0]) == request_count:
        sql = "SELECT data FROM bodies WHERE chunk_id = ? ORDER BY first_idx"
        rows = stream_rows(conn, sql, (chunk_id,), batch=1)
        yield from batch_body_parts(bytes(data) for (data,) in rows)
        return
    job_pk, idxs = _job_and_members(conn, chunk_id)
    yield from batch_body_parts(body for _idx, body in iter_bodies(conn, job_pk, idxs))


def _job_and_members(conn: Connection, chunk_id: int) -> tuple[int, list[int]]:
    sql = "SELECT job_pk, idx FROM requests WHERE chunk_id = ? ORDER BY idx"
    rows = list(stream_rows(conn, sql, (chunk_id,)))
    return (int(rows[0][0]) if rows else 0), [int(idx) for _pk, idx in rows]


class _Segment:
    def __init__(self, row: Sequence[Any]) -> None:
        self.first, self.count = int(row[0]), int(row[1])
        self.data = bytes(row[2])
        self.ends: array[int] = unpack_uint32s(bytes(row[3]))

    def holds(self, idx: int) -> bool:
        return self.first <= idx < self.first + self.count

    def span(self, idx: int) -> tuple[int, int]:
        return span(self.ends, idx - self.first, 1)


def _segments(conn: Connection, job_pk: int, idxs: Iterable[int]) -> Iterator[tuple[int, _Segment]]:
    """Each of `idxs` (ascending) with the segment holding its body, one in memory."""
    sql = (
        "SELECT first_idx, request_count, data, ends FROM bodies"
        " WHERE job_pk = ? AND first_idx <= ? ORDER BY first_idx DESC LIMIT 1"
    )
    segment: _Segment | None = None
    for idx in idxs:
        if segment is None or not segment.holds(idx):
            row = first_row(conn, sql, (job_pk, idx))
            segment = None if row is None else _Segment(row)
            if segment is None or not segment.holds(idx):
                raise LookupError(f"no stored body for request {idx} of job {job_pk}")
        yield idx, segment


def iter_bodies(conn: Connection, job_pk: int, idxs: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """(idx, body) for each of `idxs`, which must ascend."""
    for idx, segment in _segments(conn, job_pk, idxs):
        start, end = segment.span(idx)
        yield idx, segment.data[start:end]


def body_sizes(conn: Connection, job_pk: int, idxs: Iterable[int]) -> list[tuple[int, int]]:
    """(idx, body bytes) for each of `idxs`, which must ascend."""
    sizes = []
    for idx, segment in _segments(conn, job_pk, idxs):
        start, end = segment.span(idx)
        sizes.append((idx, end - start))
    return sizes
