"""The results-file lines of a job: how they are stored, and read back in input order.

The answers of a first-round chunk (the chunks ingest cut, which cover the input in
order) are stored once fetched as segments: the chunk's lines sorted by input index and
joined by newlines, with their indexes and end offsets (segments.py). Every other line (an
answer to a retried request, a request canceled or refused without an answer) is a row of
`outputs` and wins over a segment line of the same request: it is always the later one.

Reading a job back goes chunk by chunk: a chunk whose segments hold a line for each of its
requests and none of whose requests has a row in `outputs` is copied as stored, without
touching a line; any other gets each line from its row, its segment, or, for a request
still on its way, a line saying where it stands.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise
from typing import Any

import orjson

from .db import Connection
from .schema import FINAL_REQUEST_STATUSES
from .segments import SEGMENT_MAX_BYTES, pack, span, uint32s, unpack_uint32s
from .sql import executemany, first_row, stream_rows

__all__ = [
    "ChunkLineWriter",
    "SegmentRow",
    "insert_segments",
    "iter_blocks",
    "iter_ended_lines",
    "iter_lines",
    "store_chunk_lines",
]

BLOCK_LINES = 4096  #: lines per block when a chunk is put together line by line
_UNFINISHED = "no final status yet: the job has not finished (abr resume JOB carries it on)"
#: a row of `result_lines`: (chunk id, first index, job pk, lines, indexes, ends, data)
SegmentRow = tuple[int, int, int, int, bytes, bytes, bytes]
_INSERT = (
    "INSERT INTO result_lines (chunk_id, first_idx, job_pk, request_count, idxs, ends, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def store_chunk_lines(
    conn: Connection, job_pk: int, chunk_id: int, lines: Iterable[tuple[int, bytes]]
) -> None:
    """Store a first-round chunk's lines, (input index, line) in any order, as segments."""
    writer = ChunkLineWriter(job_pk, chunk_id)
    try:
        writer.add(lines)
        insert_segments(conn, writer.segments())
    finally:
        writer.close()


def insert_segments(conn: Connection, rows: Iterable[SegmentRow]) -> None:
    """Store a chunk's segments (`ChunkLineWriter.segments`), one at a time."""
    for row in rows:
        executemany(conn, _INSERT, [row])


class ChunkLineWriter:
    """A first-round chunk's lines, given a slice at a time in any order (a results file
    has its own), made into segments in input order by `segments`. Until then they wait
    in an anonymous temporary file, with each one's index and place in arrays: memory
    holds the arrays and one segment, not the chunk's lines. A line given twice for one
    request: the last one counts. No store is needed: the helper process makes them."""

    def __init__(self, job_pk: int, chunk_id: int) -> None:
        self.job_pk, self.chunk_id = job_pk, chunk_id
        # closed by close(): the writer lives across the caller's slices
        self._file = tempfile.TemporaryFile(prefix="abr-lines-")  # noqa: SIM115
        self._idxs, self._starts, self._sizes = array("I"), array("Q"), array("I")
        self._end = 0

    def add(self, lines: Iterable[tuple[int, bytes]]) -> None:
        pairs = list(lines)
        if not pairs:
            return
        sizes = [len(line) for _, line in pairs]
        self._idxs.extend(idx for idx, _ in pairs)
        self._starts.extend(accumulate((size + 1 for size in sizes[:-1]), initial=self._end))
        self._sizes.extend(sizes)
        # newline-ended, so that a run of lines in input order is read back as one block
        block = b"\n".join(line for _, line in pairs) + b"\n"
        self._file.write(block)
        self._end += len(block)

    def segments(self) -> Iterator[SegmentRow]:
        """The lines given, as segment rows of up to `SEGMENT_MAX_BYTES`, in input order."""
        self._file.flush()
        part: list[int] = []
        size = 0
        for pos in self._in_order():
            part.append(pos)
            size += self._sizes[pos] + 1
            if size > SEGMENT_MAX_BYTES:
                yield self._segment(part)
                part, size = [], 0
        if part:
            yield self._segment(part)

    def close(self) -> None:
        self._file.close()

    def _in_order(self) -> list[int]:
        """Positions of the lines given, by input index; of two for one index, the later."""
        idxs = self._idxs
        order = list(range(len(idxs)))
        if any(idxs[i] >= idxs[i + 1] for i in range(len(idxs) - 1)):
            order.sort(key=idxs.__getitem__)  # stable: of equal indexes, the later stays last
            order = [p for p, q in pairwise(order) if idxs[p] != idxs[q]] + order[-1:]
        return order

    def _segment(self, part: list[int]) -> SegmentRow:
        fd, starts, sizes = self._file.fileno(), self._starts, self._sizes
        first, last = part[0], part[-1]
        if all(part[i] + 1 == part[i + 1] for i in range(len(part) - 1)):
            begin = starts[first]  # consecutive in the file: one read, newlines and all
            data = os.pread(fd, starts[last] + sizes[last] - begin, begin)
            ends = uint32s([end - 1 for end in accumulate(sizes[p] + 1 for p in part)])
        else:
            data, ends = pack([os.pread(fd, sizes[p], starts[p]) for p in part], b"\n")
        idxs = uint32s([self._idxs[p] for p in part])
        return (self.chunk_id, self._idxs[first], self.job_pk, len(part), idxs, ends, data)


def iter_lines(conn: Connection, job_pk: int) -> Iterator[bytes]:
    """The job's results-file lines in input order, one at a time (no newline)."""
    rest = b""
    for piece in iter_blocks(conn, job_pk):
        lines = (rest + piece).split(b"\n")
        rest = lines.pop()
        yield from lines


def iter_ended_lines(conn: Connection, job_pk: int) -> Iterator[bytes]:
    """The lines of the requests that have ended so far, in input order. While a job runs,
    a request waiting to be retried still has its earlier answer stored: it is left out."""
    final = {status.value for status in FINAL_REQUEST_STATUSES}
    sql = "SELECT status FROM requests WHERE job_pk = ? ORDER BY idx"
    statuses = stream_rows(conn, sql, (job_pk,))
    for line, row in zip(iter_lines(conn, job_pk), statuses, strict=True):
        if row[0] in final:
            yield line


def iter_blocks(conn: Connection, job_pk: int) -> Iterator[bytes]:
    """The job's results file, in pieces that together are its lines in input order, each
    ending in a newline (a piece may end mid-line: stored segments are passed on as they
    are, their newlines apart, so no megabyte is copied to add one)."""
    total_row = first_row(conn, "SELECT total_requests FROM jobs WHERE pk = ?", (job_pk,))
    total = int(total_row[0]) if total_row else 0
    sql = "SELECT id, request_count FROM chunks WHERE job_pk = ? AND round = 1 ORDER BY seq"
    firsts = [(int(cid), int(count)) for cid, count in stream_rows(conn, sql, (job_pk,))]
    overrides = _Overrides(conn, job_pk)
    start = 0
    for chunk_id, count in firsts:
        yield from _chunk_blocks(conn, job_pk, chunk_id, start, start + count, overrides)
        start += count
    if start < total:  # no chunk covers these (not expected): say where they stand
        yield from _assembled(conn, job_pk, start, total, overrides.upto(total))


def _chunk_blocks(
    conn: Connection, job_pk: int, chunk_id: int, start: int, stop: int, overrides: _Overrides
) -> Iterator[bytes]:
    over = overrides.upto(stop)
    stored = first_row(
        conn, "SELECT sum(request_count) FROM result_lines WHERE chunk_id = ?", (chunk_id,)
    )
    whole = stored is not None and stored[0] is not None and int(stored[0]) == stop - start
    sql = "SELECT idxs, ends, data FROM result_lines WHERE chunk_id = ? ORDER BY first_idx"
    if whole and not over:  # the common case: the chunk as stored
        for _idxs, _ends, data in stream_rows(conn, sql, (chunk_id,), batch=1):
            yield bytes(data)  # a block without its last newline: the next yield is it
            yield b"\n"
        return
    lines: dict[int, bytes] = {}
    for raw_idxs, raw_ends, raw in stream_rows(conn, sql, (chunk_id,), batch=1):
        data, ends = bytes(raw), unpack_uint32s(bytes(raw_ends))
        for i, idx in enumerate(unpack_uint32s(bytes(raw_idxs))):
            begin, end = span(ends, i, 1)
            lines[idx] = data[begin:end]
    lines.update(over)
    yield from _assembled(conn, job_pk, start, stop, lines)


def _assembled(
    conn: Connection, job_pk: int, start: int, stop: int, lines: dict[int, bytes]
) -> Iterator[bytes]:
    """Lines start..stop-1 from `lines`, or for a request without one, from its row."""
    sql = (
        "SELECT idx, custom_id, status, attempts FROM requests"
        " WHERE job_pk = ? AND idx >= ? AND idx < ? ORDER BY idx"
    )
    block: list[bytes] = []
    for idx, custom_id, status, attempts in stream_rows(conn, sql, (job_pk, start, stop)):
        line = lines.get(int(idx))
        if line is None:
            line = orjson.dumps(
                {
                    "custom_id": custom_id,
                    "status": status,
                    "error": {"type": "unfinished", "message": _UNFINISHED},
                    "attempts": attempts,
                }
            )
        block.append(line)
        if len(block) >= BLOCK_LINES:
            yield b"\n".join(block) + b"\n"
            block.clear()
    if block:
        yield b"\n".join(block) + b"\n"


class _Overrides:
    """The job's `outputs` rows in index order, taken a range at a time."""

    def __init__(self, conn: Connection, job_pk: int) -> None:
        sql = "SELECT idx, output FROM outputs WHERE job_pk = ? ORDER BY idx"
        self._rows: Iterator[Any] = iter(stream_rows(conn, sql, (job_pk,)))
        self._next: tuple[int, bytes] | None = self._advance()

    def _advance(self) -> tuple[int, bytes] | None:
        row = next(self._rows, None)
        return None if row is None else (int(row[0]), bytes(row[1]))

    def upto(self, stop: int) -> dict[int, bytes]:
        """The rows with an index below `stop` not taken yet."""
        taken: dict[int, bytes] = {}
        while self._next is not None and self._next[0] < stop:
            taken[self._next[0]] = self._next[1]
            self._next = self._advance()
        return taken
