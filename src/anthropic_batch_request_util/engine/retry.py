"""Retry: a chunk's requests that failed retryably (api_error, overloaded_error, expired,
while attempts remain) are cut into new chunks of the next round, in the transaction that
stores the chunk's results."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import Settings
from ..inputs.chunking import ChunkCutter, chunk_limits
from ..store import Connection, bodies
from ..store import chunks as chunk_rows
from ..store import requests as request_rows

__all__ = ["cut_into_chunks", "plan_retries"]


def plan_retries(conn: Connection, chunk: chunk_rows.Chunk, settings: Settings) -> list[int]:
    """New pending chunks for the chunk's requests to retry; their ids."""
    rows = bodies.body_sizes(conn, chunk.job_pk, request_rows.retry_rows(conn, chunk.id))
    if not rows:
        return []
    return cut_into_chunks(conn, chunk.job_pk, chunk.round + 1, rows, settings)


def cut_into_chunks(
    conn: Connection,
    job_pk: int,
    round_: int,
    rows: Sequence[tuple[int, int]],
    settings: Settings,
) -> list[int]:
    """Put the rows (idx, body size) into new pending chunks of round `round_`, cut by the
    same limits as at ingest."""
    cutter = ChunkCutter(*chunk_limits(settings))
    groups: list[list[int]] = []
    sizes: list[int] = []
    for idx, size in rows:
        seq = cutter.place(int(size))
        if seq == len(groups):
            groups.append([])
            sizes.append(0)
        groups[seq].append(int(idx))
        sizes[seq] += int(size)
    made = []
    for idxs, size in zip(groups, sizes, strict=True):
        chunk_id = chunk_rows.add_chunk(conn, job_pk, round_, len(idxs), size)
        request_rows.assign(conn, job_pk, idxs, chunk_id)
        made.append(chunk_id)
    return made
