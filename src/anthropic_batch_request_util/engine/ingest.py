"""Ingest: read the input into the store, cut it into chunks, and name the job.

Everything happens in one transaction: a bad input (or Ctrl-C, or a full disk) leaves
nothing behind, and a full store is a usage error (exit 2): nothing was created or sent. A
job's id is derived from its requests and the settings that shape them, so running the
same file again finds the existing job instead of paying for it twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..config import Settings, settings_to_dict
from ..errors import InputError, StoreFullError
from ..inputs import InputFormat, Request, detect_format, read_requests, request_defaults
from ..inputs.chunking import ChunkCutter, chunk_limits
from ..store import Connection, Store
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows
from ..store.bodies import SegmentWriter

__all__ = [
    "STREAM_INPUT",
    "Ingested",
    "identity_settings",
    "ingest",
    "ingest_at",
    "ingest_stream",
]

INSERT_BATCH = 5000  #: request rows per statement (their bodies go to `bodies` segments)
JOB_HASH_CHARS = 10  #: hex characters of the fingerprint in a job id
STREAM_INPUT = "<python>"  #: the input of a job whose requests came from code, not a file


@dataclass(frozen=True, slots=True)
class Ingested:
    """What ingest found or made."""

    job_id: str
    job_pk: int
    created: bool  #: False when the same input and settings already had a job
    total: int


class _Existing(Exception):
    def __init__(self, job: job_rows.Job) -> None:
        self.job = job


def identity_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change what is asked or how answers are judged."""
    every = settings_to_dict(settings)
    return {
        "api.version": every["api"]["version"],
        "api.beta_features": every["api"]["beta_features"],
        "model": every["model"],
        "batch.max_attempts": every["batch"]["max_attempts"],
    }


def ingest(store: Store, path: Path, settings: Settings, output_dir: Path) -> Ingested:
    """Read `path` into the store as a new job, or find the job it already is."""
    input_format = detect_format(path)
    try:
        with store.begin() as conn:
            job_pk = job_rows.add_job(
                conn, path, input_format, settings_to_dict(settings), output_dir
            )
            fingerprint, total = _add_requests(conn, job_pk, path, settings)
            if input_format == InputFormat.JSONL:
                _check_unique(conn, job_pk, path)
            existing = job_rows.find_job(conn, fingerprint)
            if existing is not None:
                raise _Existing(existing)
            job_id = _job_id(path, fingerprint)
            job_rows.publish_job(conn, job_pk, job_id, fingerprint, total)
    except _Existing as found:
        job = found.job
        return Ingested(job.id, job.pk, created=False, total=job.total_requests)
    except StoreFullError as error:
        error.exit_code = 2  # rolled back: the next run, once there is room, starts afresh
        raise
    return Ingested(job_id, job_pk, created=True, total=total)


def ingest_at(url: str, path: Path, settings: Settings, output_dir: Path) -> Ingested:
    """`ingest` into the store at `url`: what the helper process runs (helper.py), so that
    reading the input and the imports a run needs go on at once, on two cores."""
    with Store(url) as store:
        return ingest(store, path, settings, output_dir)


class _ChunkWriter:
    """Opens a chunk row as the cutter moves on, and sets its size when it closes."""

    def __init__(self, conn: Connection, job_pk: int, cutter: ChunkCutter) -> None:
        self.conn, self.job_pk, self.cutter = conn, job_pk, cutter
        self.chunk_id = -1
        self.seq = -1
        self.count = 0
        self.bytes = 0

    def place(self, request: Request) -> int:
        seq = self.cutter.place(len(request.body))
        if seq != self.seq:
            self.close()
            self.seq, self.count, self.bytes = seq, 0, 0
            self.chunk_id = chunk_rows.add_chunk(self.conn, self.job_pk, round_=1)
        self.count += 1
        self.bytes += len(request.body)
        return self.chunk_id

    def close(self) -> None:
        if self.chunk_id >= 0:
            chunk_rows.set_size(self.conn, self.chunk_id, self.count, self.bytes)


def ingest_stream(
    store: Store,
    requests: Iterable[Request],
    settings: Settings,
    output_dir: Path,
    *,
    name: str,
    input_format: InputFormat = InputFormat.JSONL,
) -> Ingested:
    """`ingest` for requests that come from code (`inputs.iterable`), read as they come:
    a new job named after `name`, or the job the same requests and settings already are.
    An `InputError` from `requests` rolls everything back, as for a file."""
    try:
        with store.begin() as conn:
            settings_dict = settings_to_dict(settings)
            job_pk = job_rows.add_job(conn, STREAM_INPUT, input_format, settings_dict, output_dir)
            fingerprint, total = _store_requests(conn, job_pk, requests, settings)
            _check_unique(conn, job_pk, Path(name))
            existing = job_rows.find_job(conn, fingerprint)
            if existing is not None:
                raise _Existing(existing)
            job_id = _job_id(Path(name), fingerprint)
            job_rows.publish_job(conn, job_pk, job_id, fingerprint, total)
    except _Existing as found:
        job = found.job
        return Ingested(job.id, job.pk, created=False, total=job.total_requests)
    return Ingested(job_id, job_pk, created=True, total=total)


def _add_requests(conn: Connection, job_pk: int, path: Path, settings: Settings) -> tuple[str, int]:
    return _store_requests(conn, job_pk, read_requests(path, request_defaults(settings)), settings)


def _store_requests(
    conn: Connection, job_pk: int, requests: Iterable[Request], settings: Settings
) -> tuple[str, int]:
    writer = _ChunkWriter(conn, job_pk, ChunkCutter(*chunk_limits(settings)))
    segments = SegmentWriter(conn, job_pk)
    job_hash = hashlib.sha256(
        orjson.dumps(identity_settings(settings), option=orjson.OPT_SORT_KEYS)
    )
    rows: list[tuple[int, int, str, int]] = []
    total = 0
    for request in requests:
        chunk_id = writer.place(request)
        job_hash.update(request.body)
        job_hash.update(b"\n")
        segments.add(request.index, chunk_id, request.body)
        rows.append((job_pk, request.index, request.custom_id, chunk_id))
        total += 1
        if len(rows) >= INSERT_BATCH:
            request_rows.add_requests(conn, rows)
            rows.clear()
    request_rows.add_requests(conn, rows)
    segments.flush()
    writer.close()
    return job_hash.hexdigest(), total


def _check_unique(conn: Connection, job_pk: int, path: Path) -> None:
    duplicates = request_rows.duplicate_custom_ids(conn, job_pk)
    if duplicates:
        problems = [f"custom_id {cid!r} is used {n} times" for cid, n in duplicates]
        raise InputError(problems, path=str(path))


def _job_id(path: Path, fingerprint: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:40] or "job"
    return f"{stem}-{fingerprint[:JOB_HASH_CHARS]}"
