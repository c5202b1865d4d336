"""The first step of a job: read the input into the store, cut into chunks, name the job.

Everything happens in one transaction: a bad input (or Ctrl-C) leaves nothing behind. A
job's id is derived from its requests and the settings that shape them, so running the
same file again finds the existing job instead of paying for it twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import jobs as job_store
from .bodies import SegmentWriter
from .chunking import ChunkCutter, effective_limits
from .config import Settings, settings_to_dict
from .errors import InputError
from .inputs import InputFormat, Request, RequestDefaults, detect_format, read_requests
from .store import ChunkStatus, JobStatus, RequestStatus, Store, chunks, insert_rows, jobs, now

__all__ = ["Ingested", "ingest", "request_defaults"]

INSERT_BATCH = 5000  #: request rows per statement (their bodies go to `bodies` segments)
_COLUMNS = ("job_pk", "idx", "custom_id", "chunk_id")
_NEW_REQUEST = {
    "body": b"",
    "status": RequestStatus.QUEUED.value,
    "attempts": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_creation_tokens": 0,
    "cache_read_tokens": 0,
}
JOB_HASH_CHARS = 10  #: hex characters of the fingerprint in a job id


@dataclass(frozen=True, slots=True)
class Ingested:
    """What ingest found or made."""

    job_id: str
    job_pk: int
    created: bool  #: False when the same input and settings already had a job
    total: int


class _Existing(Exception):
    def __init__(self, job: job_store.Job) -> None:
        self.job = job


def request_defaults(settings: Settings) -> RequestDefaults:
    return RequestDefaults(
        model=settings.model.name,
        max_tokens=settings.model.max_tokens,
        temperature=settings.model.temperature,
        enable_prompt_cache=settings.batch.enable_prompt_cache,
        cache_type=settings.batch.cache_type,
        max_request_bytes=effective_limits(
            settings.batch.max_size, settings.batch.chunk_size, settings.api.max_payload_size
        )[1]
        - len(b'{"requests":[]}'),
    )


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
            job_pk = _insert_job(conn, path, input_format, settings, output_dir)
            fingerprint, total = _insert_requests(conn, job_pk, path, settings)
            if input_format == InputFormat.JSONL:
                _check_unique(conn, job_pk, path)
            existing = job_store.find_job(conn, fingerprint)
            if existing is not None:
                raise _Existing(existing)
            job_id = _publish(conn, job_pk, path, fingerprint, total)
    except _Existing as found:
        job = found.job
        return Ingested(job.id, job.pk, created=False, total=job.total_requests)
    return Ingested(job_id, job_pk, created=True, total=total)


def _insert_job(
    conn: Connection, path: Path, input_format: InputFormat, settings: Settings, output_dir: Path
) -> int:
    t = now()
    stmt = jobs.insert().values(
        status=JobStatus.INGESTING,
        input_path=str(path.resolve()),
        input_format=input_format,
        settings_json=orjson.dumps(settings_to_dict(settings)),
        total_requests=0,
        next_chunk_seq=0,
        output_dir=str(output_dir.resolve()),
        created_at=t,
        updated_at=t,
    )
    return int(conn.execute(stmt.returning(jobs.c.pk)).scalar_one())


class _ChunkWriter:
    """Opens and closes chunk rows as the cutter moves on."""

    def __init__(self, conn: Connection, job_pk: int, cutter: ChunkCutter) -> None:
        self.conn, self.job_pk, self.cutter = conn, job_pk, cutter
        self.chunk_id = -1
        self.seq = -1
        self.count = 0
        self.bytes = 0
        self.digest = hashlib.sha256()

    def place(self, request: Request) -> int:
        seq = self.cutter.place(len(request.body))
        if seq != self.seq:
            self.close()
            self._open(seq)
        self.count += 1
        self.bytes += len(request.body)
        self.digest.update(b"%d," % request.index)
        return self.chunk_id

    def _open(self, seq: int) -> None:
        self.seq, self.count, self.bytes, self.digest = seq, 0, 0, hashlib.sha256()
        stmt = chunks.insert().values(
            job_pk=self.job_pk,
            seq=seq,
            round=1,
            status=ChunkStatus.PENDING,
            request_count=0,
            body_bytes=0,
            fingerprint="",
            lease_token=0,
            fetch_attempts=0,
            updated_at=now(),
        )
        self.chunk_id = int(self.conn.execute(stmt.returning(chunks.c.id)).scalar_one())

    def close(self) -> None:
        if self.chunk_id < 0:
            return
        self.conn.execute(
            sa.update(chunks)
            .where(chunks.c.id == self.chunk_id)
            .values(
                request_count=self.count, body_bytes=self.bytes, fingerprint=self.digest.hexdigest()
            )
        )


def _insert_requests(
    conn: Connection, job_pk: int, path: Path, settings: Settings
) -> tuple[str, int]:
    limits = effective_limits(
        settings.batch.max_size, settings.batch.chunk_size, settings.api.max_payload_size
    )
    writer = _ChunkWriter(conn, job_pk, ChunkCutter(*limits))
    segments = SegmentWriter(conn, job_pk)
    job_hash = hashlib.sha256(
        orjson.dumps(identity_settings(settings), option=orjson.OPT_SORT_KEYS)
    )
    rows: list[tuple[int, int, str, int]] = []
    total = 0
    for request in read_requests(path, request_defaults(settings)):
        chunk_id = writer.place(request)
        job_hash.update(request.body)
        job_hash.update(b"\n")
        segments.add(request.index, chunk_id, request.body)
        rows.append((job_pk, request.index, request.custom_id, chunk_id))
        total += 1
        if len(rows) >= INSERT_BATCH:
            insert_rows(conn, "requests", _COLUMNS, rows, _NEW_REQUEST)
            rows.clear()
    if rows:
        insert_rows(conn, "requests", _COLUMNS, rows, _NEW_REQUEST)
    segments.flush()
    writer.close()
    conn.execute(sa.update(jobs).where(jobs.c.pk == job_pk).values(next_chunk_seq=writer.seq + 1))
    return job_hash.hexdigest(), total


def _check_unique(conn: Connection, job_pk: int, path: Path) -> None:
    duplicates = job_store.duplicate_custom_ids(conn, job_pk)
    if duplicates:
        problems = [f"custom_id {cid!r} is used {n} times" for cid, n in duplicates]
        raise InputError(problems, path=str(path))


def _publish(conn: Connection, job_pk: int, path: Path, fingerprint: str, total: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:40] or "job"
    job_id = f"{stem}-{fingerprint[:JOB_HASH_CHARS]}"
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.pk == job_pk)
        .values(
            id=job_id,
            fingerprint=fingerprint,
            status=JobStatus.RUNNING,
            total_requests=total,
            updated_at=now(),
        )
    )
    return job_id
