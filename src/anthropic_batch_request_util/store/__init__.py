"""The job store: all persistence, and the only package that speaks SQL.

schema        the tables as they are today, and the statuses of jobs, chunks, requests
migrations    frozen, append-only schema changes
db            opening a store: engine, SQLite pragmas, URLs, migrating
sql           bulk helpers: many rows per statement, straight on the driver
locks         store-wide locks, heartbeats, freeing what dead processes held
workers       worker heartbeats: who is working on jobs right now
jobs          job rows, their tally, and the `Snapshot` every view renders
chunks        chunk rows: cutting, leases, guarded transitions, the submit turn
requests      request rows: added, assigned, answered, or ended without an answer
bodies        request bodies, a chunk's run at a time
result_lines  results-file lines, a chunk's run at a time, read back in input order
exports       where a job's files go at each run, and every file written for it
segments      how many small byte strings are packed into one blob
"""

from __future__ import annotations

from .db import Connection, Store, safe_url
from .schema import (
    ACTIVE_CHUNK_STATUSES,
    ACTIVE_JOB_STATUSES,
    ENDED_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    ChunkStatus,
    JobStatus,
    RequestStatus,
)

__all__ = [
    "ACTIVE_CHUNK_STATUSES",
    "ACTIVE_JOB_STATUSES",
    "ENDED_JOB_STATUSES",
    "FINAL_REQUEST_STATUSES",
    "ChunkStatus",
    "Connection",
    "JobStatus",
    "RequestStatus",
    "Store",
    "safe_url",
]
