"""The files users read: `results/<job>.jsonl` (one line per input request, in input order)
and `batch_records/<job>.json` (the job, its settings without secrets, every chunk).

Files are written to a temporary name and renamed into place, so a reader never sees half
a file and two workers finishing the same job write the same bytes. They go under the job's
output folder, which each run (or resume) of the job chooses again; the store notes every
file written, and the record lists them.

A write the machine refuses for good (no space, a read-only or unwritable folder) raises a
`LocalFaultError` naming the path: waiting will not cure it, the user must.
"""

from __future__ import annotations

import csv
import errno
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from .config import Settings, records_dir, results_dir, settings_from_dict
from .cost.budget import budget_dict
from .errors import LocalFaultError
from .store import Store, exports, result_lines
from .store import chunks as chunk_rows
from .store import jobs as job_rows

__all__ = [
    "batch_record",
    "export_csv",
    "iso",
    "local_fault",
    "records_path",
    "results_path",
    "write_outputs",
    "write_record",
]

CSV_FIELDS = (
    "custom_id",
    "status",
    "text",
    "error_type",
    "error_message",
    "attempts",
    "batch_id",
    "cost_usd",
)


def results_path(job: job_rows.Job) -> Path:
    return results_dir(_settings(job)) / f"{job.id}.jsonl"


def records_path(job: job_rows.Job) -> Path:
    return records_dir(_settings(job)) / f"{job.id}.json"


def _settings(job: job_rows.Job) -> Settings:
    """The job's settings, with its folders under the output folder its last run chose."""
    data = dict(job.settings)
    data["storage"] = {**data.get("storage", {}), "base_dir": job.output_dir}
    return settings_from_dict(data, cwd=Path(job.output_dir))


#: errors of the local machine that no amount of waiting cures: they need the user
_LASTING_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "the path is a folder",
    errno.EFBIG: "file too large",
}


def local_fault(error: BaseException, path: Path | str | None = None) -> LocalFaultError | None:
    """The `LocalFaultError` an `OSError` is when waiting cannot cure it; None otherwise."""
    if not isinstance(error, OSError) or error.errno not in _LASTING_ERRNOS:
        return None
    where = str(path if path is not None else error.filename or "")
    what = _LASTING_ERRNOS[error.errno]
    return LocalFaultError(f"cannot write {where}: {what} ({errno.errorcode[error.errno]})", where)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def write_outputs(store: Store, job: job_rows.Job) -> dict[str, Any]:
    """Write the results file and the batch record of a job; the record written."""
    path = results_path(job)
    with store.begin() as conn:
        _atomic_write(
            path, lambda handle: handle.writelines(result_lines.iter_blocks(conn, job.pk))
        )
    with store.begin() as conn:
        exports.add_export(conn, job.pk, "results", path)
    return write_record(store, job)


def write_record(
    store: Store, job: job_rows.Job, written: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write a job's batch record; the record written. Given the record written just before
    for a job whose requests have all ended, only the job's own fields are new: its counts,
    usage and attempts (full scans of a million rows) are taken from it."""
    record = batch_record(store, job) if written is None else {**written, **_job_fields(job)}
    _atomic_write(
        records_path(job),
        lambda handle: handle.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n"),
    )
    return record


def _atomic_write(path: Path, write: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        _raise_fault(error, path.parent)
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)  # a half-written file must not take the room
        _raise_fault(error, path)
        raise


def _raise_fault(error: BaseException, path: Path) -> None:
    fault = local_fault(error, path)
    if fault is not None:
        raise fault from error


def batch_record(store: Store, job: job_rows.Job) -> dict[str, Any]:
    """The job as a plain dict: input, settings, counts, usage and every chunk."""
    with store.begin() as conn:
        tally = job_rows.job_tally(conn, job.pk)
        counts, usage, cost = tally.counts, tally.usage, tally.cost_usd
        found = chunk_rows.job_chunks(conn, job.pk)
        written = exports.job_exports(conn, job.pk)
        history = job_rows.attempt_history(conn, job.pk)
    return {
        "job_id": job.id,
        **_job_fields(job),
        "input_file": job.input_path,
        "input_format": job.input_format,
        "created_at": iso(job.created_at),
        "total_requests": job.total_requests,
        "counts": counts.finals(),
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
        },
        "cost_usd": cost,
        "budget": budget_dict(job, cost),
        "results_path": str(results_path(job)),
        "output_dir": job.output_dir,
        "exports": [{**e, "written_at": iso(e["written_at"])} for e in written],
        "settings": job.settings,
        "attempts": history,
        "chunks": [_chunk_record(chunk) for chunk in found],
    }


def _job_fields(job: job_rows.Job) -> dict[str, Any]:
    """What a job's record says of its status: all that finishing it changes."""
    return {"status": job.status.value, "finished_at": iso(job.finished_at), "error": job.error}


def _chunk_record(chunk: chunk_rows.Chunk) -> dict[str, Any]:
    return {
        "seq": chunk.seq,
        "round": chunk.round,
        "batch_id": chunk.batch_id,
        "status": chunk.status.value,
        "request_count": chunk.request_count,
        "body_bytes": chunk.body_bytes,
        "submitted_at": iso(chunk.submitted_at),
        "processing_status": chunk.processing_status,
        "request_counts": chunk.counts,
        "error": chunk.error,
    }


def export_csv(store: Store, job: job_rows.Job, handle: IO[str]) -> int:
    """Write a job's results as CSV (one row per request, input order); returns rows."""
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
    writer.writeheader()
    rows = 0
    with store.begin() as conn:
        for raw in result_lines.iter_lines(conn, job.pk):
            line = orjson.loads(raw)
            error = line.get("error") or {}
            writer.writerow(
                {
                    "custom_id": line.get("custom_id"),
                    "status": line.get("status"),
                    "text": line.get("text", ""),
                    "error_type": error.get("type", ""),
                    "error_message": error.get("message", ""),
                    "attempts": line.get("attempts"),
                    "batch_id": line.get("batch_id") or "",
                    "cost_usd": "" if line.get("cost_usd") is None else line["cost_usd"],
                }
            )
            rows += 1
    return rows
